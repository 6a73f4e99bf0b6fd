from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from extractors.corpora.ravdess import prepare_ravdess
from extractors.facial import AUS, FacialConfig
from flows.config import ExtractConfig
from flows.extract import run_extraction
from tests.conftest import SHARED_DATA
from tests.face_scenes import (
    au_family_correlations,
    extract_clips,
    mean_aus,
    small_face_scenes,
    two_face_scenes,
)
from vocabulary.atomic import write_parquet

pytestmark = pytest.mark.realdata


def test_ravdess_av_surprise_raises_brows_and_drops_jaw(tmp_path: Path):
    manifest = tmp_path / "manifest.parquet"
    manifest_table, _ = prepare_ravdess(SHARED_DATA / "ravdess_av")
    write_parquet(manifest_table, manifest)
    summary = run_extraction("facial", manifest, tmp_path / "out",
                             ExtractConfig(cache_dir=str(tmp_path / "cache")), FacialConfig())
    assert (summary.total, summary.failed) == (18, 0)
    # the stage summary (and so the Prefect artifact) carries the coverage distribution
    assert "Face coverage" in summary.details and "18 utterances, median 1.00" in summary.details
    assert "face_lost (below 0.50): 0" in summary.markdown()
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


@pytest.fixture(scope="module")
def small_faces(tmp_path_factory) -> tuple[list[Path], list[Path]]:
    """RAVDESS's audio-video clips and their faces made 40-120 px high in 1080p frames."""
    clips = sorted((SHARED_DATA / "ravdess_av").glob("01-*.mp4"))
    return clips, small_face_scenes(clips, tmp_path_factory.mktemp("small"))


def test_small_faces_keep_coverage_and_action_units(small_faces):
    clips, scenes = small_faces
    full = extract_clips(FacialConfig(detector="full_range"), scenes)
    short = extract_clips(FacialConfig(detector="short_range"), scenes)
    assert all(isinstance(r, dict) and r["coverage"] >= 0.95 for r in full)
    assert np.mean([r["coverage"] if isinstance(r, dict) else 0.0 for r in short]) < 0.2
    closeups = extract_clips(FacialConfig(detector="short_range"), clips)
    families = au_family_correlations(closeups, full)
    assert min(families.values()) > 0.6, families
    by_label = {}
    for clip, row in zip(clips, full, strict=True):
        emotion, statement = clip.stem.split("-")[2], clip.stem.split("-")[4]
        by_label.setdefault((emotion, statement), []).append(mean_aus(row))
    brows, jaw = [AUS.index("AU01"), AUS.index("AU02")], AUS.index("AU26")
    for statement in ("01", "02"):  # surprised (08) against neutral (01)
        surprised = np.mean(by_label[("08", statement)], axis=0)
        neutral = np.mean(by_label[("01", statement)], axis=0)
        assert surprised[brows].sum() > neutral[brows].sum(), statement
        assert surprised[jaw] > neutral[jaw], statement


def test_the_speaking_face_is_kept_beside_another(tmp_path):
    clips = sorted((SHARED_DATA / "ravdess_av").glob("*.mp4"))
    speakers = [c for c in clips if c.name.startswith("01-")]
    pairs = two_face_scenes(speakers, clips, tmp_path, 6)
    rows = extract_clips(FacialConfig(speaker="active"), [scene for scene, _ in pairs])
    kept = [(np.median([b[0] + b[2] / 2 for b in r["face_box"] if b is not None]) < 0.5) == left
            for r, (_, left) in zip(rows, pairs, strict=True)]
    assert sum(kept) >= 5, kept
    assert all(r["n_tracks"] >= 2 for r in rows)
