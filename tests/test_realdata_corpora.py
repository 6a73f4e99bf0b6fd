from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from extractors.corpora.ravdess import prepare_ravdess
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.realdata


def test_meld_train_dev_manifest_via_cli(tmp_path: Path):
    out = tmp_path / "m.parquet"
    result = subprocess.run(
        [sys.executable, "-m", "mcncl", "corpus", "prepare", "meld", str(SHARED_DATA / "meld"),
         "--out", str(out)], capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    counts = dict(duckdb.sql(f"select split, count(*) from '{out}' group by split").fetchall())
    assert counts == {"train": 9989, "dev": 1109}
    labels = {r[0] for r in duckdb.sql(f"select distinct label from '{out}'").fetchall()}
    assert labels == {"neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"}
    curly = duckdb.sql(f"select count(*) from '{out}' where text like '%’%'").fetchall()[0][0]
    assert curly > 100
    missing = duckdb.sql(f"select count(*) from '{out}' where source_start_s is null").fetchall()[0]
    assert missing[0] == 0


def test_ravdess_speech_manifest():
    table, report = prepare_ravdess(SHARED_DATA / "ravdess_speech", dev_actors=(11, 12))
    assert table.num_rows == 720
    assert len(set(table["label"].to_pylist())) == 8
    assert len(set(table["speaker"].to_pylist())) == 12
    assert table["split"].to_pylist().count("dev") == 120
    assert report.counts == {}


def test_ravdess_av_manifest():
    table, _ = prepare_ravdess(SHARED_DATA / "ravdess_av")
    assert table.num_rows == 18
    assert table["video_path"].null_count == 0
