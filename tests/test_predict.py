"""`mcncl predict` on a folder of one speaker's clips: standardised with their own statistics,
as the model saw its training speakers (``tensors.speaker_norm: speaker``)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from extractors.configs import AcousticConfig, FacialConfig, TextConfig
from extractors.corpora import write_manifest
from fusion.config import ModelConfig, TensorConfig, TrainConfig
from fusion.evaluate import evaluate
from fusion.tensors import build_tensors
from fusion.train import train
from mcncl.predict import PredictError, clips_in, predict_clip, predict_clips

EXTRACTORS = {"acoustic": AcousticConfig(), "facial": FacialConfig(), "text": TextConfig()}
TENSORS = TensorConfig(speaker_norm="speaker", standardise=())  # the params it was trained with


@pytest.fixture(scope="module")
def speaker_normed(demo_corpus: Path, tmp_path_factory) -> tuple[Path, Path, Path]:
    """An acoustic-only model trained on the demo with per-speaker standardisation."""
    from bench.side_by_side import extract_in_process

    work = tmp_path_factory.mktemp("predict")
    manifest = work / "manifest.parquet"
    write_manifest("meld", demo_corpus, manifest, name="demo")
    extract_in_process("acoustic", manifest, work / "features", AcousticConfig())
    build_tensors(manifest, work / "features", work / "tensors", TENSORS)
    model = ModelConfig(modalities=("acoustic",), d_model=16, n_heads=2, n_layers=1)
    train(work / "tensors", work / "model", model, replace(TrainConfig(), epochs=2),
          echo=lambda *_: None)
    evaluate(work / "tensors", work / "model")
    return manifest, work / "model", work


def test_a_folder_of_one_speakers_clips_is_standardised_with_its_own_statistics(
        speaker_normed, demo_corpus: Path):
    manifest, model, work = speaker_normed
    rows = duckdb.sql(f"select utterance_id, split, video_path from '{manifest}' "
                      "where speaker = 'Anna' order by utterance_id").fetchall()
    folder = work / "anna"  # every clip of hers, as the corpus's statistics saw them
    folder.mkdir()
    for uid, _, video in rows:
        (folder / _name(uid)).symlink_to(demo_corpus / video)
    results = {Path(r["clip"]).name: r for r in predict_clips(
        clips_in(folder), [None] * len(rows), model, EXTRACTORS, TENSORS)}
    assert len(results) == len(rows)
    assert all(r["masked"] == {} and r["notes"] == [] for r in results.values())
    predictions = model / "predictions.parquet"
    [(order,)] = duckdb.sql(f"select value from parquet_kv_metadata('{predictions}') where key "
                            "= 'labels'").fetchall()
    pipeline = {uid: dict(zip(json.loads(order), p, strict=True)) for uid, p in duckdb.sql(
        f"select utterance_id, probabilities from '{predictions}'").fetchall()}
    tested = [uid for uid, split, _ in rows if split == "test"]
    assert tested
    for uid in tested:  # the same numbers as the pipeline's own test predictions
        assert results[_name(uid)]["probabilities"] == pytest.approx(pipeline[uid], abs=1e-4)
    alone = predict_clip(folder / _name(tested[0]), "", model, EXTRACTORS, TENSORS)
    assert alone["probabilities"] != pytest.approx(pipeline[tested[0]], abs=1e-4)
    assert "1 clip(s) are too few to know their speaker" in alone["notes"][0]


def _name(utterance_id: str) -> str:
    return f"{utterance_id.replace('/', '_')}.mp4"


def test_a_folder_without_clips_is_a_clear_error(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(PredictError, match=r"no audio or video files in it; give a clip, or a "
                                           r"folder of one speaker's clips"):
        clips_in(tmp_path)
