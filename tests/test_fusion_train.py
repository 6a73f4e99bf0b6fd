from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from fusion.checkpoint import MODEL, load_checkpoint, save_checkpoint
from fusion.config import DELETED, ModelConfig, TensorConfig, TrainConfig
from fusion.data import load_split
from fusion.evaluate import evaluate, load_model
from fusion.tensors import build_tensors
from fusion.train import predict, train
from tests.tensor_cache import make_tensor_cache

ABLATIONS_FILE = Path(__file__).resolve().parents[1] / "fusion" / "ablations.py"
SMALL = ModelConfig(d_model=32, n_heads=4, n_layers=1)
FAST = TrainConfig(epochs=6, batch_size=16, lr=2e-3, patience=10, num_threads=1)


def test_training_learns_is_deterministic_and_round_trips(tmp_path: Path):
    cache = make_tensor_cache(tmp_path / "cache")
    first = train(cache, tmp_path / "a", SMALL, FAST, echo=lambda *_: None)
    second = train(cache, tmp_path / "b", SMALL, FAST, echo=lambda *_: None)
    assert first == second  # same params + data → same metrics on CPU
    log = (tmp_path / "a" / "train_log.csv").read_text().splitlines()
    assert log[0] == "epoch,train_loss,dev_weighted_f1,dev_accuracy,lr" and len(log) == 7
    times = (tmp_path / "a" / "train_times.csv").read_text().splitlines()
    assert times[0] == "epoch,seconds" and len(times) == 7
    assert first["best_dev_weighted_f1"] > 0.7  # labels are in the features: chance is ~0.33
    model, saved = load_model(tmp_path / "a")
    dev = load_split(cache, "dev", torch.device("cpu"))
    probs, labels = predict(model, dev, 8)
    from sklearn.metrics import f1_score

    assert f1_score(labels, probs.argmax(1), average="weighted") == pytest.approx(
        saved["dev"]["weighted_f1"])
    assert saved["model_config"]["d_model"] == 32 and saved["meta"]["labels"][0] == "neutral"


def test_evaluate_writes_metrics_predictions_and_plots(tmp_path: Path):
    cache = make_tensor_cache(tmp_path / "cache")
    train(cache, tmp_path / "m", SMALL, FAST, echo=lambda *_: None)
    result = evaluate(cache, tmp_path / "m")
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["n"] == 24
    assert 0 <= metrics["macro_f1"] <= 1 and set(metrics["per_class_f1"]) <= {
        "neutral", "joy", "anger"}
    predictions = tmp_path / "m" / "predictions.parquet"
    accuracy = duckdb.sql(f"select avg((label = predicted)::int), min(len(probabilities)) "
                          f"from '{predictions}'").fetchall()[0]
    assert accuracy == (pytest.approx(result["accuracy"]), 3)
    assert (tmp_path / "m" / "confusion.csv").read_text().count("\n") == 25


def test_resume_continues_from_the_last_epoch(tmp_path: Path):
    cache = make_tensor_cache(tmp_path / "cache")
    whole = train(cache, tmp_path / "whole", SMALL, FAST, echo=lambda *_: None)

    def crash_in_epoch_4(line: str) -> None:  # echo runs before epoch 4 is saved
        if line.startswith("epoch   4"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cache, tmp_path / "parts", SMALL, FAST, echo=crash_in_epoch_4)
    said = []
    rest = train(cache, tmp_path / "parts", SMALL, FAST, resume=True, echo=said.append)
    assert rest == whole
    assert said[0] == ("model.context auto: past (a corpus of dialogues: each utterance is "
                       "read with its dialogue)")
    assert said[1].startswith("resuming after epoch 3")
    logs = [(tmp_path / d / "train_log.csv").read_text().splitlines() for d in ("whole", "parts")]
    assert logs[0] == logs[1]  # timings are in train_times.csv, not in the tracked log


def test_a_tensor_cache_without_dev_is_refused_before_anything_is_written(tmp_path: Path):
    cache = make_tensor_cache(tmp_path / "cache", sizes=(8, 0, 4))
    with pytest.raises(ValueError, match=re.escape("the train and dev splits must both have "
                                                   "utterances (train 8, dev 0)")):
        train(cache, tmp_path / "m", SMALL, FAST, echo=lambda *_: None)
    assert not (tmp_path / "m").exists()


def test_a_checkpoint_recording_deleted_settings_loads_and_predicts(tmp_path: Path):
    """Issue 28 deleted settings within seed noise or redundant (fusion.config.DELETED): a
    checkpoint that records them, and the projection head's weights, still loads and predicts
    the same."""
    cache = make_tensor_cache(tmp_path / "cache")
    train(cache, tmp_path / "m", SMALL, replace(FAST, epochs=1), echo=lambda *_: None)
    old = load_checkpoint(tmp_path / "m" / MODEL)
    old["model_config"]["projection_dim"] = 8
    old["train_config"].update(ema_decay=0.999, label_smoothing=0.1, focal_gamma=2.0,
                               sampler="balanced", min_per_class=2, queue_size=1024,
                               hard_negatives="none", logit_adjustment=1.0,
                               class_weights=True)
    settings = {"max_text_tokens": 40, "dtype": "float16"}
    old["meta"]["tensors"], old["provenance"] = dict(settings), {"tensors": dict(settings)}
    old["state_dict"].update({f"heads.{m}.{i}.weight": torch.randn(8, 32)
                              for m in ("text", "acoustic", "facial") for i in (0, 2)})
    save_checkpoint(old, tmp_path / "old" / MODEL)
    model, saved = load_model(tmp_path / "old")
    assert "projection_dim" not in saved["model_config"]
    assert not set(DELETED["train"]) & set(saved["train_config"])
    assert saved["meta"]["tensors"] == saved["provenance"]["tensors"] == {"max_text_tokens": 40}
    assert not [name for name in saved["state_dict"] if name.startswith("heads.")]
    dev = load_split(cache, "dev", torch.device("cpu"))
    np.testing.assert_array_equal(predict(model, dev, 8)[0],
                                  predict(load_model(tmp_path / "m")[0], dev, 8)[0])


def test_build_tensors_from_feature_tables(tmp_path: Path):
    manifest = tmp_path / "manifest.parquet"
    ids = ["a", "b", "c", "d"]
    pq.write_table(pa.table({
        "utterance_id": ids, "split": ["train", "train", "dev", "test"],
        "label": ["joy", "anger", "joy", "anger"], "dialogue_id": ["d1", "d1", "d2", "d3"],
        "turn": [0, 1, 0, 0], "speaker": ["x", "y", "x", "y"],
    }).replace_schema_metadata({"labels": json.dumps(["joy", "anger"])}), manifest)
    features = tmp_path / "features"
    features.mkdir()
    vec = lambda n: pa.list_(pa.float32(), n)  # noqa: E731
    pq.write_table(pa.table({
        "utterance_id": ["a", "c"],
        "token_embeddings": pa.array([[[1.0] * 4] * 3, [[2.0] * 4] * 50], pa.list_(vec(4))),
        "embedding": pa.array([[1.0] * 4, [2.0] * 4], vec(4)),
    }), features / "text.parquet")
    pq.write_table(pa.table({
        "utterance_id": ["a", "b"],
        "lld": pa.array([[[1.0, 2.0]] * 20, [[3.0, 6.0]] * 35], pa.list_(vec(2))),
        "functionals": pa.array([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]], vec(3)),
    }).replace_schema_metadata({"lld_hop_s": "0.01"}), features / "acoustic.parquet")
    pq.write_table(pa.table({
        "utterance_id": ["b"],
        "aus": pa.array([[[0.5] * 3, None, [0.7] * 3]], pa.list_(vec(3))),
    }), features / "facial.parquet")
    meta = build_tensors(manifest, features, tmp_path / "t",
                         TensorConfig(max_text_tokens=8, max_facial_frames=4))
    assert meta["splits"] == {"train": ["a", "b"], "dev": ["c"], "test": ["d"]}
    assert meta["dims"] == {"text": 4, "acoustic": 2, "facial": 3}
    train_split = load_split(tmp_path / "t", "train", torch.device("cpu"))
    assert train_split["text"].shape == (2, 8, 4) and train_split["text"].dtype == torch.float16
    assert train_split["text_mask"].sum(1).tolist() == [3, 0]
    assert train_split["text_present"].tolist() == [True, False]  # b has no text: masked
    assert train_split["acoustic_mask"].sum(1).tolist() == [2, 3]  # 10 Hz: 20 → 2, 35 → 3 frames
    acoustic = train_split["acoustic"].float()
    mean, std = (2 * 1 + 3 * 3) / 5, np.sqrt((2 * 1.2**2 + 3 * 0.8**2) / 5)  # train frames
    assert np.allclose(acoustic[0, :2, 0], (1 - mean) / std, atol=1e-3)
    assert np.allclose(acoustic[1, :3, 0], (3 - mean) / std, atol=1e-3)
    assert meta["normalisation"]["acoustic"]["mean"][0] == pytest.approx(mean)
    assert train_split["facial_mask"].tolist()[1][:3] == [True, False, True]
    assert train_split["label"].tolist() == [0, 1]
    dev = load_split(tmp_path / "t", "dev", torch.device("cpu"))
    assert dev["text_mask"].sum().item() == 8  # 50 tokens capped at 8


def test_context_training_batches_whole_dialogues_and_predicts_in_order(tmp_path: Path):
    from fusion.data import batches as make_batches

    cache = make_tensor_cache(tmp_path / "cache")
    split = load_split(cache, "train", torch.device("cpu"))
    seen = []
    for b in make_batches(split, 10, torch.Generator().manual_seed(0), by_dialogue=True):
        dialogues = b["dialogue"].tolist()
        assert all((split["dialogue"] == d).sum() == dialogues.count(d) for d in dialogues)
        seen += b["index"].tolist()
    assert sorted(seen) == list(range(96))
    result = train(cache, tmp_path / "ctx", ModelConfig(d_model=32, n_heads=4, n_layers=1,
                                                        context="past_future"), FAST,
                   echo=lambda *_: None)
    assert result["best_dev_weighted_f1"] > 0.6
    model, saved = load_model(tmp_path / "ctx")
    probs, labels = predict(model, load_split(cache, "dev", torch.device("cpu")), 8)
    from sklearn.metrics import f1_score

    assert f1_score(labels, probs.argmax(1), average="weighted") == pytest.approx(
        saved["dev"]["weighted_f1"])


def test_ablations_table_and_dvc_commands(tmp_path: Path):
    from fusion.ablations import ABLATIONS, dvc_command, run_all

    assert dvc_command("text-only") == "dvc exp run -n text-only -S 'model.modalities=[text]'"
    assert dvc_command("contrastive") == ("dvc exp run -n contrastive -S "
                                          "'train.contrastive_weight=0.1' "
                                          "-S 'train.hard_negative_beta=0.0'")
    cache = make_tensor_cache(tmp_path / "cache")
    rows = run_all(cache, SMALL, TrainConfig(epochs=2, batch_size=32, num_threads=1),
                   echo=lambda *_: None)
    assert [r["ablation"] for r in rows] == list(ABLATIONS)
    assert all(r["split"] == "dev" and 0 <= r["weighted_f1"] <= 1 for r in rows)
    assert "test" not in Path(ABLATIONS_FILE).read_text()  # compared on dev, nothing else
    by_name = {r["ablation"]: r for r in rows}
    assert by_name["full"] != by_name["facial-only"]  # different models, different scores


def _csv_corpus(path: Path, conversation: bool) -> Path:
    """A small text-only corpus CSV: 8 dialogues of 4 turns (two speakers taking turns), or,
    without ``conversation``, the same 32 lines as single utterances (no dialogue columns)."""
    lines = {"joy": "What a wonderful day, I love it!", "anger": "Stop that right now, I hate it!",
             "neutral": "The meeting is at three o'clock."}
    header = "utterance_id,text,label,split,audio_path" + (
        ",dialogue_id,turn,speaker" if conversation else "")
    rows = [header]
    for d in range(8):
        for t in range(4):
            label = list(lines)[(d + t) % 3]
            row = f"d{d}u{t},\"{lines[label]}\",{label},{'dev' if d >= 6 else 'train'},"
            rows.append(row + (f",d{d},{t},s{t % 2}" if conversation else ""))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("conversation, context", [(True, "past"), (False, "none")])
def test_a_conversation_trains_with_context_and_single_utterances_without(
        tmp_path: Path, conversation: bool, context: str):
    """``model.context: auto`` (the default) on small CSV corpora through the real adapter,
    the packaged text encoder and the tensor cache: no setting says which."""
    from extractors.configs import TextConfig
    from extractors.corpora.csv_corpus import prepare_csv
    from extractors.inputs import read_inputs
    from extractors.registry import make_extractor
    from flows.tables import write_stage_tables
    from vocabulary.atomic import write_parquet

    assert ModelConfig().context == "auto"
    table, _ = prepare_csv(_csv_corpus(tmp_path / "corpus.csv", conversation), name="c")
    manifest = tmp_path / "manifest.parquet"
    write_parquet(table, manifest)
    extractor = make_extractor("text", TextConfig())
    utts = read_inputs(manifest, 0)
    write_stage_tables(zip([u.utterance_id for u in utts], extractor.extract(utts), strict=True),
                       extractor, tmp_path / "features")
    build_tensors(manifest, tmp_path / "features", tmp_path / "tensors", TensorConfig())
    train(tmp_path / "tensors", tmp_path / "model", replace(SMALL, modalities=("text",)),
          replace(FAST, epochs=2), echo=lambda *_: None)
    assert load_checkpoint(tmp_path / "model" / MODEL)["model_config"]["context"] == context
