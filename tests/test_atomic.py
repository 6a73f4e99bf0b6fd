from __future__ import annotations

import os
from pathlib import Path

import pytest

from vocabulary.atomic import atomic_path, write_text


def test_write_is_whole_with_usual_permissions_and_no_temporary(tmp_path: Path):
    target = tmp_path / "out" / "metrics.json"
    write_text("{}", target)
    mask = os.umask(0)
    os.umask(mask)
    assert target.read_text() == "{}"
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_failure_midway_keeps_the_previous_file(tmp_path: Path):
    target = tmp_path / "features.parquet"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["features.parquet"]


def test_unwritable_folder_names_it_and_the_fix(tmp_path: Path):
    blocker = tmp_path / "models"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(OSError, match=r"models: cannot write here \(.*\); choose a writable "
                       "output folder or fix its permissions."):
        write_text("x", blocker / "metrics.json")
    assert blocker.read_text() == "a file where a folder should be"
