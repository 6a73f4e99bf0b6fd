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
from mcncl.predict import (
    PredictError,
    clips_in,
    predict_clip,
    predict_clips,
    predict_conversation,
)

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
    model = ModelConfig(modalities=("acoustic",), d_model=16, n_heads=2, n_layers=1,
                        context="none")  # a lone clip and a folder read no dialogue
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


def test_a_conversation_is_scored_in_context_and_a_lone_clip_alone(demo_corpus: Path,
                                                                  tmp_path: Path):
    """A text model trained with dialogue context (the default on a corpus of dialogues): a
    test dialogue given as a conversation CSV gets the pipeline's own predictions; one of its
    turns alone gets others, and a note saying it was scored without context."""
    from bench.side_by_side import extract_in_process

    manifest = tmp_path / "manifest.parquet"
    write_manifest("meld", demo_corpus, manifest, name="demo")
    extract_in_process("text", manifest, tmp_path / "features", TextConfig())
    build_tensors(manifest, tmp_path / "features", tmp_path / "tensors", TENSORS)
    model = ModelConfig(modalities=("text",), d_model=16, n_heads=2, n_layers=1)
    train(tmp_path / "tensors", tmp_path / "model", model, replace(TrainConfig(), epochs=2),
          echo=lambda *_: None)
    evaluate(tmp_path / "tensors", tmp_path / "model")
    turns = duckdb.sql(f"select utterance_id, text, speaker, video_path from '{manifest}' where "
                       "dialogue_id = (select min(dialogue_id) from '{manifest}' where split = "
                       "'test') order by turn".replace("{manifest}", str(manifest))).fetchall()
    assert len(turns) > 2
    conversation = tmp_path / "conversation.csv"
    conversation.write_text("text,speaker\n" + "".join(
        f'"{text}",{speaker}\n' for _, text, speaker, _ in turns), encoding="utf-8")
    results = predict_conversation(conversation, tmp_path / "model", EXTRACTORS, TENSORS)
    predictions = tmp_path / "model" / "predictions.parquet"
    pipeline = dict(duckdb.sql(f"select utterance_id, probabilities from '{predictions}'")
                    .fetchall())
    [(order,)] = duckdb.sql(f"select value from parquet_kv_metadata('{predictions}') where key "
                            "= 'labels'").fetchall()
    for (uid, *_), result in zip(turns, results, strict=True):
        expected = dict(zip(json.loads(order), pipeline[uid], strict=True))
        assert result["probabilities"] == pytest.approx(expected, abs=1e-4)
        assert result["notes"] == []
    uid, text, _, video = turns[1]
    alone = predict_clip(demo_corpus / video, text, tmp_path / "model", EXTRACTORS, TENSORS)
    assert alone["probabilities"] != pytest.approx(results[1]["probabilities"], abs=1e-4)
    assert alone["notes"] == ["dialogue context (past): the model reads each utterance "
                              "with its conversation, and these clips have none, so each is "
                              "scored alone; give the conversation as a CSV (mcncl predict "
                              "conversation.csv) to use it."]


def test_a_conversation_csv_with_a_missing_clip_is_a_clear_error(tmp_path: Path):
    conversation = tmp_path / "talk.csv"
    conversation.write_text("text,speaker,audio_path\nhello,a,gone.wav\n", encoding="utf-8")
    with pytest.raises(PredictError, match=r"talk.csv: gone.wav not found; fix the path "
                                           r"\(relative to the CSV's folder\) or leave it empty"):
        predict_conversation(conversation, tmp_path, EXTRACTORS, TENSORS)


def test_a_turn_without_media_is_masked_not_a_crash(tmp_path: Path):
    """A conversation's text-only row: the acoustic and facial extractors are not run on it."""
    from extractors.base import UtteranceInput
    from mcncl.predict import _extract

    turn = UtteranceInput("predict/0", "hello there", None, None)
    for stage in ("acoustic", "facial"):
        [(index, failure)] = _extract(stage, EXTRACTORS[stage], [turn], tmp_path / stage)
        assert (index, failure.kind) == (0, "no_media")
        assert (tmp_path / stage / f"{stage}.parquet").is_file()
