from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from extractors.corpora.ravdess import prepare_ravdess
from flows.config import ExtractConfig
from flows.extract import run_extraction
from tests.conftest import SHARED_DATA
from tests.media import egemaps
from vocabulary.atomic import write_parquet

pytestmark = pytest.mark.realdata


def test_ravdess_speech_clips_get_acoustic_features(tmp_path: Path):
    """Two actors' clips (120; bench/extract.py runs all 720) and one empty file."""
    table, _ = prepare_ravdess(SHARED_DATA / "ravdess_speech")
    table = table.filter(pc.is_in(table["speaker"], pa.array(["actor01", "actor02"])))
    empty = tmp_path / "03-01-01-01-01-01-99.flac"
    empty.write_bytes(b"")
    bad = {c: [table[c][0].as_py()] for c in table.column_names}
    bad.update(utterance_id=["ravdess/empty"], audio_path=[str(empty)])
    manifest = tmp_path / "manifest.parquet"
    write_parquet(pa.concat_tables([table, pa.table(bad, schema=table.schema)]), manifest)
    config = ExtractConfig(cache_dir=str(tmp_path / "cache"))
    summary = run_extraction("acoustic", manifest, tmp_path / "out", config, egemaps())
    assert (summary.total, summary.failed) == (121, 1)
    rows = duckdb.sql(f"select count(*), min(len(functionals)), max(len(functionals)), "
                      f"min(len(lld)), min(len(lld[1])) from '{tmp_path}/out/acoustic.parquet'")
    count, fmin, fmax, frames, width = rows.fetchall()[0]
    assert (count, fmin, fmax, width) == (120, 88, 88, 25)
    assert frames > 250  # every clip is at least 2.5 s of speech
    errors = duckdb.sql(f"select utterance_id, kind from '{tmp_path}/out/errors/acoustic.parquet'")
    assert errors.fetchall() == [("ravdess/empty", "empty")]
