"""Checkpoints carry their feature provenance: evaluate refuses a tensor cache made from
features made differently, and `mcncl predict` makes features with the model's own settings.

Real small data: the demo corpus's acoustic features with eGeMAPSv02 (the model's) and with
ComParE_2016 (params.yaml's default: "the params changed since training").
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, replace
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from extractors.configs import AcousticConfig, FacialConfig, TextConfig
from extractors.corpora import write_manifest
from fusion.checkpoint import (
    MODEL,
    ProvenanceError,
    describe_diff,
    load_checkpoint,
    provenance_diff,
    save_checkpoint,
)
from fusion.config import ModelConfig, TensorConfig, TrainConfig
from fusion.data import load_meta
from fusion.evaluate import evaluate
from fusion.seeds import train_seeds
from fusion.tensors import build_tensors
from fusion.train import train
from mcncl import show
from mcncl.predict import PredictError, predict_clip
from tests.media import egemaps
from tests.tiny_models import tiny_bert

ACOUSTIC_ONLY = ModelConfig(modalities=("acoustic",), d_model=16, n_heads=2, n_layers=1,
                            context="none")  # clips scored alone, as they were trained
TEXT_ONLY = replace(ACOUSTIC_ONLY, modalities=("text",))
QUICK = TrainConfig(epochs=2, num_threads=1)
UNSCALED = TensorConfig(speaker_norm="none")  # the default is speaker
PARAMS = {"acoustic": AcousticConfig(), "facial": FacialConfig(), "text": TextConfig()}
QUIET = {"echo": lambda *_: None}


@pytest.fixture(scope="module")
def demo(demo_corpus: Path, tmp_path_factory) -> dict[str, Path]:
    """An acoustic model trained on eGeMAPSv02 features (cache ``same``) and a cache of the
    same clips' ComParE_2016 features scaled per speaker (``other``)."""
    from bench.side_by_side import extract_in_process

    work = tmp_path_factory.mktemp("provenance")
    manifest = work / "manifest.parquet"
    write_manifest("meld", demo_corpus, manifest, name="demo")
    extract_in_process("acoustic", manifest, work / "egemaps", egemaps())
    build_tensors(manifest, work / "egemaps", work / "same", UNSCALED)
    train(work / "same", work / "model", ACOUSTIC_ONLY, QUICK, **QUIET)
    extract_in_process("acoustic", manifest, work / "compare", AcousticConfig())
    build_tensors(manifest, work / "compare", work / "other", TensorConfig(speaker_norm="speaker"))
    return {"work": work, "manifest": manifest, "model": work / "model", "same": work / "same",
            "other": work / "other", "corpus": demo_corpus}


def test_the_cache_and_the_checkpoint_record_how_the_features_were_made(demo):
    metadata = pq.read_schema(demo["work"] / "egemaps" / "acoustic.parquet").metadata
    provenance = load_meta(demo["same"])["provenance"]
    assert set(provenance) == {"acoustic", "tensors", "labels"}
    acoustic = provenance["acoustic"]
    assert (acoustic["extractor"], acoustic["version"], acoustic["config_hash"]) == (
        "acoustic", metadata[b"version"].decode(), metadata[b"config_hash"].decode())
    assert acoustic["config"]["feature_set"] == "eGeMAPSv02"
    assert "workers" not in acoustic["config"]  # run-only: it cannot change a feature
    assert provenance["tensors"] == json.loads(json.dumps(asdict(UNSCALED)))
    assert provenance["labels"] == load_meta(demo["same"])["labels"]
    assert load_checkpoint(demo["model"] / MODEL)["provenance"] == provenance


def test_evaluate_refuses_features_made_differently_and_names_the_settings(demo):
    evaluate(demo["same"], demo["model"], **QUIET)  # the same settings evaluate fine
    assert json.loads((demo["model"] / "metrics.json").read_text())["n"] == 12
    rescaled = demo["work"] / "rescaled"  # the same shapes: nothing else would notice
    build_tensors(demo["manifest"], demo["work"] / "egemaps", rescaled,
                  TensorConfig(speaker_norm="speaker"))
    with pytest.raises(ProvenanceError, match=re.escape(
            f"from {rescaled}: tensors.speaker_norm (none → speaker); run `dvc repro`")):
        evaluate(rescaled, demo["model"], **QUIET)
    with pytest.raises(ProvenanceError, match=re.escape(
            f"{demo['model'] / MODEL} was trained on features made differently from "
            f"{demo['other']}: acoustic.config.feature_set (eGeMAPSv02 → ComParE_2016), "
            "tensors.speaker_norm (none → speaker); run `dvc repro` to retrain.")):
        evaluate(demo["other"], demo["model"], **QUIET)


def test_a_seed_ensemble_carries_the_provenance_too(demo, tmp_path: Path):
    config = replace(QUICK, epochs=1, seeds=2, combine="average")
    train_seeds(demo["same"], tmp_path, ACOUSTIC_ONLY, config, **QUIET)
    assert load_checkpoint(tmp_path / MODEL)["provenance"] == \
        load_meta(demo["same"])["provenance"]
    with pytest.raises(ProvenanceError, match=r"acoustic.config.feature_set \(eGeMAPSv02"):
        evaluate(demo["other"], tmp_path, **QUIET)


def test_predict_with_changed_params_uses_the_models_settings_and_says_so(demo, capsys):
    evaluate(demo["same"], demo["model"], **QUIET)
    predictions = demo["model"] / "predictions.parquet"
    uid, probabilities = duckdb.sql(f"select utterance_id, probabilities from '{predictions}' "
                                    "order by utterance_id limit 1").fetchall()[0]
    [video] = duckdb.sql(f"select video_path from '{demo['manifest']}' where utterance_id = "
                         f"'{uid}'").fetchall()[0]
    result = predict_clip(demo["corpus"] / video, "", demo["model"], PARAMS,
                          TensorConfig(speaker_norm="speaker"))
    note = ("using the model's own feature settings (acoustic.feature_set eGeMAPSv02, "
            "tensors.speaker_norm none), which differ from params.yaml.")
    assert result["notes"] == [note]
    labels = load_meta(demo["same"])["labels"]  # the pipeline's numbers: eGeMAPSv02 was used
    assert result["probabilities"] == pytest.approx(dict(zip(labels, probabilities,
                                                             strict=True)), abs=1e-4)
    show.predictions([result])
    assert note in " ".join(capsys.readouterr().err.split())


def test_an_old_checkpoint_still_works_and_says_provenance_cannot_be_checked(demo, tmp_path):
    saved = load_checkpoint(demo["model"] / MODEL)
    del saved["provenance"]  # as checkpoints were written before
    save_checkpoint(saved, tmp_path / MODEL)
    said = []
    evaluate(demo["same"], tmp_path, echo=said.append)
    assert said == [f"{tmp_path / MODEL} does not record the features it was trained on (an "
                    f"earlier version wrote it), so they cannot be checked against "
                    f"{demo['same']}; retrain to record them."]
    [video] = duckdb.sql(f"select video_path from '{demo['manifest']}' where split = 'test' "
                         "limit 1").fetchall()[0]
    result = predict_clip(demo["corpus"] / video, "", tmp_path, {**PARAMS, "acoustic": egemaps()},
                          UNSCALED)
    assert result["notes"] == [f"{tmp_path / MODEL} does not record the features it was "
                               "trained on (an earlier version wrote it), so they cannot be "
                               "checked; retrain to record them."]


def test_predict_refuses_when_the_models_text_model_folder_is_gone(demo, tmp_path: Path):
    from bench.side_by_side import extract_in_process

    base = tiny_bert(tmp_path / "tiny-bert")
    extract_in_process("text", demo["manifest"], tmp_path / "features", TextConfig(
        model=str(base)))
    build_tensors(demo["manifest"], tmp_path / "features", tmp_path / "tensors", TensorConfig())
    train(tmp_path / "tensors", tmp_path / "model", TEXT_ONLY, replace(QUICK, epochs=1),
          **QUIET)
    shutil.rmtree(base)
    [video] = duckdb.sql(f"select video_path from '{demo['manifest']}' limit 1").fetchall()[0]
    with pytest.raises(PredictError, match=re.escape(
            f"{tmp_path / 'model' / MODEL}: the model learnt from text features made with "
            f"{base}, which no longer exists; restore it, or retrain (`dvc repro`).")):
        predict_clip(demo["corpus"] / video, "oh my god", tmp_path / "model", PARAMS,
                     TensorConfig())


def test_the_diff_names_each_differing_setting_by_its_dotted_name():
    trained = {"acoustic": {"version": "1", "config": {"feature_set": "eGeMAPSv02", "hop": 10},
                            "config_hash": "a"},
               "text": {"version": "1", "config": {"model": "x" * 50}},
               "tensors": {"speaker_norm": "none"}, "labels": ["joy", "anger"]}
    current = {"acoustic": {"version": "1", "config": {"feature_set": "ComParE_2016",
                                                       "hop": 10}, "config_hash": "b"},
               "text": {"version": "2", "config": {"model": "y" * 50}},
               "tensors": {"speaker_norm": "none"}, "labels": ["joy"]}
    differ = provenance_diff(trained, current)
    assert list(differ) == ["acoustic.config.feature_set", "acoustic.config_hash",
                            "text.version", "text.config.model", "labels"]
    assert describe_diff(differ) == ("acoustic.config.feature_set (eGeMAPSv02 → ComParE_2016),"
                                     " text.version (1 → 2), text.config.model, labels")
    assert provenance_diff(trained, trained) == {}
    assert provenance_diff({"facial": {"version": "1"}}, {"facial": None}) == {
        "facial": ({"version": "1"}, None)}
