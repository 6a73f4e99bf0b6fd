"""Extraction through the ``mcncl`` command against a plain loop, side by side (issue 15).

    python bench/cli_extract.py [--clips 300] [--runs 3] [--modality acoustic]

On the first ``--clips`` RAVDESS speech clips (``../shared/data/ravdess_speech``), in turn:

- the plain loop: this process calls the extractor one clip at a time (the model loaded and
  one clip extracted before the clock starts), the floor a hand-written script would give;
- ``mcncl extract <modality> --manifest M`` as one whole process with a fresh cache, while
  the shared Prefect server runs (``mcncl ui``).

Prints clips per second (medians of ``--runs``; every process wall-clock, start to exit) and
each one's ratio to the plain loop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mcncl.offline import go_offline  # noqa: E402

go_offline()

from extractors.corpora import prepare_corpus  # noqa: E402
from extractors.inputs import read_inputs  # noqa: E402
from flows.extract import get_extractor  # noqa: E402
from mcncl.config import load_params  # noqa: E402
from tests.project import free_port  # noqa: E402
from vocabulary.atomic import write_parquet  # noqa: E402

RAVDESS = REPO.parent / "shared" / "data" / "ravdess_speech"


def plain_loop(modality: str, manifest: Path) -> float:
    extractor = get_extractor(modality, getattr(load_params(REPO / "params.yaml"), modality))
    utts = read_inputs(manifest)
    extractor.extract(utts[:1])
    start = time.perf_counter()
    for utt in utts:
        extractor.extract([utt])
    return len(utts) / (time.perf_counter() - start)


def command(modality: str, manifest: Path, env: dict, work: Path) -> float:
    """Clips per second of one whole ``mcncl extract`` process in a fresh folder and cache."""
    folder = Path(tempfile.mkdtemp(dir=work))
    shutil.copy(REPO / "params.yaml", folder / "params.yaml")
    start = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).with_name("mcncl")), "extract", modality,
                             "--manifest", str(manifest)], cwd=folder, env=env,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"mcncl extract failed:\n{result.stderr}")
    return len(read_inputs(manifest)) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modality", default="acoustic")
    args = parser.parse_args()
    if not RAVDESS.is_dir():
        raise SystemExit(f"{RAVDESS} is absent: this benchmark needs the RAVDESS speech clips.")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        table, _ = prepare_corpus("ravdess", RAVDESS, name="ravdess")
        manifest = work / "ravdess.parquet"
        write_parquet(table.sort_by("utterance_id").slice(0, args.clips), manifest)
        env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PYTHONPATH")}
        env["PREFECT_HOME"] = str(work / "prefect-home")
        mcncl = str(Path(sys.executable).with_name("mcncl"))
        subprocess.run([mcncl, "ui", "--port", str(free_port())], env=env, check=True,
                       capture_output=True)
        try:
            rates: dict[str, list[float]] = {}
            for _ in range(args.runs):
                rates.setdefault("plain loop", []).append(plain_loop(args.modality, manifest))
                rates.setdefault("`mcncl extract`", []).append(
                    command(args.modality, manifest, env, work))
        finally:
            subprocess.run([mcncl, "ui", "--stop"], env=env, capture_output=True)
    plain = statistics.median(rates["plain loop"])
    print(f"{args.clips} RAVDESS clips, {args.modality}, medians of {args.runs}; "
          f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores\n")
    print("| how | clips/s | runs | ratio to the plain loop |\n|---|---|---|---|")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"| {name} | {rate:.2f} | {' '.join(f'{v:.2f}' for v in values)} | "
              f"{rate / plain:.2f} |")


if __name__ == "__main__":
    main()
