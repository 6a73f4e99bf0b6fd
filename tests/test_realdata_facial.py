from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from extractors.corpora.ravdess import prepare_ravdess
from extractors.facial import AUS, FacialConfig
from flows.extract import run_extraction
from mcncl.atomic import write_parquet
from mcncl.config import ExtractConfig
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.realdata


def test_ravdess_av_surprise_raises_brows_and_drops_jaw(tmp_path: Path):
    manifest = tmp_path / "manifest.parquet"
    manifest_table, _ = prepare_ravdess(SHARED_DATA / "ravdess_av")
    write_parquet(manifest_table, manifest)
    summary = run_extraction("facial", manifest, tmp_path / "out",
                             ExtractConfig(cache_dir=str(tmp_path / "cache")), FacialConfig())
    assert (summary.total, summary.failed) == (18, 0)
    table = pq.read_table(tmp_path / "out" / "facial.parquet").to_pylist()
    assert len(table) == 18 and all(r["n_face_frames"] > 10 for r in table)
    labels = {r["utterance_id"]: (r["label"], r["text"]) for r in manifest_table.to_pylist()}
    index = {au: i for i, au in enumerate(AUS)}
    by_group: dict[tuple[str, str], list[np.ndarray]] = {}
    for row in table:
        aus = np.array([a for a in row["aus"] if a is not None]).mean(axis=0)
        by_group.setdefault(labels[row["utterance_id"]], []).append(aus)
    for statement in {text for _, text in labels.values()}:
        surprised = np.mean(by_group[("surprised", statement)], axis=0)
        neutral = np.mean(by_group[("neutral", statement)], axis=0)
        brows = [index["AU01"], index["AU02"]]
        assert surprised[brows].sum() > neutral[brows].sum(), statement
        assert surprised[index["AU26"]] > neutral[index["AU26"]], statement
