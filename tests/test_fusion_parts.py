"""The parts issue 13 added: hard-negative strength, speaker codes and normalisation, the
schedule's real step count, speaker-independent folds, seeds, coverage, and the dialogue
context under mixed precision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from fusion.config import ModelConfig, TensorConfig, TrainConfig
from fusion.cv import fold_manifest, speaker_folds
from fusion.data import epoch_plan, load_split
from fusion.losses import contrastive_loss
from fusion.metrics import scores
from fusion.model import DialogueContext
from fusion.tensors import build_tensors, speaker_in_dialogue
from fusion.train import train
from fusion.training import lr_factor
from tests.tensor_cache import make_tensor_cache, write_corpus

SMALL = ModelConfig(d_model=16, n_heads=2, n_layers=1, context="none")


def test_hard_negative_gradient_grows_with_beta():
    anchor = torch.tensor([[1.0, 0.0]])
    positive = torch.tensor([[0.6, 0.8]])
    negatives = torch.tensor([[0.9, 0.44], [0.2, 0.98], [-0.5, 0.87], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1, 1, 1])
    pulls = []
    for beta in (0.0, 0.25, 0.5, 1.0, 2.0):
        z = torch.cat([anchor, positive, negatives]).requires_grad_(True)
        contrastive_loss(z, labels, 0.1, beta).backward()
        pulls.append(z.grad[2].norm().item())  # the hardest negative
    assert all(b > a for a, b in zip(pulls, pulls[1:], strict=False)), pulls
    # beta 0 is plain SupCon (Khosla et al. 2020): every negative weighs 1
    z = F.normalize(torch.cat([anchor, positive, negatives]), dim=1)
    s = (z @ z.T / 0.1).fill_diagonal_(float("-inf"))
    log_prob = (s - s.logsumexp(1, keepdim=True)).fill_diagonal_(0.0)
    positives = (labels[:, None] == labels[None]).fill_diagonal_(False)
    plain = -((log_prob * positives).sum(1) / positives.sum(1)).mean()
    assert contrastive_loss(z, labels, 0.1, 0.0).item() == pytest.approx(plain.item(), rel=1e-5)


def test_speaker_codes_are_indices_within_each_dialogue():
    codes = speaker_in_dialogue(["d1", "d1", "d1", "d2", "d2", "d1"], [2, 0, 1, 1, 0, 3],
                                ["Ross", "Monica", "Ross", "Ross", "Joey", "Chandler"])
    # d1 in turn order: Monica 0, Ross 1, Ross 1, Chandler 2; d2: Joey 0, Ross 1
    assert codes.tolist() == [1, 0, 1, 1, 0, 2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_equal_scikit_learns(seed: int):
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    rng = np.random.default_rng(seed)
    labels, predicted = rng.integers(0, 5, 200), rng.integers(0, 6, 200)  # class 6 never true
    predicted[predicted == 3] = 0  # class 3 never guessed
    names = [str(i) for i in range(7)]
    mine = scores(labels, predicted, names)
    present = sorted(set(labels) | set(predicted))
    assert mine["weighted_f1"] == pytest.approx(f1_score(labels, predicted, average="weighted",
                                                         zero_division=0))
    assert mine["macro_f1"] == pytest.approx(f1_score(labels, predicted, labels=present,
                                                      average="macro", zero_division=0))
    assert mine["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert list(mine["per_class_f1"].values()) == pytest.approx(list(f1_score(
        labels, predicted, labels=present, average=None, zero_division=0)))
    assert mine["confusion"] == confusion_matrix(labels, predicted, labels=range(7)).tolist()


def test_dialogue_context_runs_under_bfloat16_autocast():
    """Training on CUDA runs under bfloat16 autocast; the context GRU's output (bfloat16) must
    land in its utterances' rows whatever dtype the fused vectors have (CPU autocast here)."""
    torch.manual_seed(0)
    context = DialogueContext(16, 4, future=True)
    x = torch.randn(7, 16)
    batch = (torch.tensor([0, 0, 1, 1, 1, 2, 0]), torch.tensor([0, 1, 0, 1, 2, 0, 2]),
             torch.tensor([0, 1, 0, 1, 0, 0, 0]))
    full = context(x, *batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = context(x, *batch)
    assert mixed.shape == (7, 16)
    assert torch.allclose(mixed.float(), full, atol=0.1)  # same rows, bfloat16 rounding only


def test_speaker_normalisation_uses_each_speakers_own_statistics(tmp_path: Path):
    manifest, features = write_corpus(tmp_path, speakers=4, per_speaker=8)
    config = TensorConfig(speaker_norm="speaker", speaker_min_utterances=8)
    meta = build_tensors(manifest, features, tmp_path / "t", config)
    train_split = load_split(tmp_path / "t", "train", torch.device("cpu"))
    functionals = train_split["functionals"].float().reshape(3, 8, 3)  # speaker by speaker
    assert torch.allclose(functionals.mean(1), torch.zeros(3, 3), atol=1e-2)
    assert torch.allclose(functionals.std(1, unbiased=False), torch.ones(3, 3), atol=1e-2)
    frames = train_split["acoustic"].float()[:8][train_split["acoustic_mask"][:8]]
    assert torch.allclose(frames.mean(0), torch.zeros(3), atol=1e-2)
    # too few utterances: the train statistics (kept for predict) are used instead
    few = build_tensors(manifest, features, tmp_path / "f",
                        TensorConfig(speaker_norm="speaker", speaker_min_utterances=9))
    assert few["normalisation"]["functionals"] == meta["normalisation"]["functionals"]
    plain = load_split(tmp_path / "f", "train", torch.device("cpu"))["functionals"].float()
    mean = np.asarray(meta["normalisation"]["functionals"]["mean"])
    assert not np.allclose(plain.reshape(3, 8, 3).mean(1).numpy(), 0, atol=0.1)
    assert abs(plain.mean(0).numpy()).max() < 1e-2 and mean.shape == (3,)
    with pytest.raises(ValueError, match="speaker_norm 'actor' is unknown"):
        build_tensors(manifest, features, tmp_path / "x", TensorConfig(speaker_norm="actor"))


def test_a_feature_constant_in_train_stays_finite_for_a_new_speaker():
    """Standardised values are clipped, so float16 storage never holds an inf."""
    from fusion.tensors import CLIP_SD, _standardise

    functionals = np.array([[1.0, 5.0], [1.0 + 2e-5, 6.0], [1.0, 7.0], [3.0, 6.0]], np.float32)
    arrays = {"functionals": functionals, "acoustic": functionals[:, None, :].copy(),
              "acoustic_mask": np.ones((4, 1), bool), "acoustic_present": np.ones(4, bool)}
    train = np.array([True, True, True, False])
    _standardise(arrays, train, np.full(4, -1), TensorConfig(), {})
    new = arrays["functionals"][3]
    assert new[0] == CLIP_SD  # (3 - 1) / ~1e-5: 200,000 standard deviations, clipped
    assert new[1] == pytest.approx(0.0, abs=1e-5)  # a normal feature is untouched
    assert np.isfinite(arrays["acoustic"].astype(np.float16)).all()


def test_schedule_ends_at_its_minimum_on_the_last_real_step(tmp_path: Path):
    lengths = [1, 7, 2, 9, 3, 3, 8, 1, 5, 6]  # dialogues of uneven length
    dialogue = torch.repeat_interleave(torch.arange(10), torch.tensor(lengths))
    turn = torch.cat([torch.arange(n) for n in lengths])
    split = {"label": torch.zeros(len(turn), dtype=torch.long), "dialogue": dialogue,
             "turn": turn}
    shuffles = torch.Generator().manual_seed(0)
    plans = [epoch_plan(split, 10, shuffles, by_dialogue=True) for _ in range(3)]
    total = sum(map(len, plans))
    assert total > 3 * -(-len(turn) // 10)  # more than the count by utterances says
    factors = [lr_factor(step, 2, total) for step in range(total)]
    assert factors[-1] == 0.0 and min(factors[:-1]) > 0
    assert factors[2:] == sorted(factors[2:], reverse=True) and factors[1] == 1.0
    # the training loop takes exactly the planned steps: its last logged rate is the minimum
    cache = make_tensor_cache(tmp_path / "cache")
    config = TrainConfig(epochs=2, batch_size=10, patience=5, num_threads=1)
    train(cache, tmp_path / "m", ModelConfig(d_model=16, n_heads=2, n_layers=1, context="past"),
          config, echo=lambda *_: None)
    log = (tmp_path / "m" / "train_log.csv").read_text().splitlines()[1:]
    train_split = load_split(cache, "train", torch.device("cpu"))
    steps = [len(epoch_plan(train_split, 10, g, by_dialogue=True))
             for g in [torch.Generator().manual_seed(config.seed)] for _ in range(2)]
    warmup = max(1, int(0.1 * sum(steps)))
    first = float(log[0].split(",")[4])
    assert first == pytest.approx(config.lr * lr_factor(steps[0], warmup, sum(steps)))
    assert float(log[1].split(",")[4]) == 0.0


def test_speaker_folds_are_disjoint_and_select_on_the_next_fold(tmp_path: Path,
                                                               monkeypatch):
    folds = speaker_folds([f"actor{i:02d}" for i in range(1, 13)] * 3, 6)
    assert folds[0] == ["actor01", "actor02"] and len(folds) == 6
    with pytest.raises(ValueError, match="cv.folds 13"):
        speaker_folds(["a", "b", "c"], 13)
    manifest, features = write_corpus(tmp_path / "corpus", speakers=6, per_speaker=6)
    table = pq.read_table(manifest)
    folds = speaker_folds(table["speaker"].to_pylist(), 3)
    run = fold_manifest(table, table["speaker"].to_pylist(), folds, 2).to_pylist()
    assert {r["speaker"] for r in run if r["split"] == "test"} == set(folds[2])
    assert {r["speaker"] for r in run if r["split"] == "dev"} == set(folds[0])
    # `mcncl cv` on it: 3 folds, each trained and scored on its own speakers
    from typer.testing import CliRunner

    from mcncl.cli import app

    project = tmp_path / "project"
    for folder in ("manifests", "features"):
        (project / "data" / folder).mkdir(parents=True)
    manifest.rename(project / "data" / "manifests" / "toy.parquet")
    features.rename(project / "data" / "features" / "toy")
    (project / "params.yaml").write_text(
        "corpora: {toy: {kind: ravdess, root: none}}\n"
        "tensors: {speaker_norm: speaker, speaker_min_utterances: 4}\n"
        "model: {modalities: [acoustic], d_model: 16, n_heads: 2, n_layers: 1}\n"
        "train: {epochs: 1, batch_size: 16, num_threads: 1}\ncv: {folds: 3}\n")
    monkeypatch.chdir(project)
    done = CliRunner().invoke(app, ["cv", "--corpus", "toy"])
    assert done.exit_code == 0, done.output
    summary = json.loads((project / "data" / "cv" / "toy" / "cv.json").read_text())
    assert [r["test_speakers"] for r in summary["runs"]] == folds
    assert summary["folds"] == 3 and 0 <= summary["weighted_f1_mean"] <= 1
    assert summary["weighted_f1_std"] >= 0 and summary["unit"] == "speaker"
    assert "3-fold speaker-independent CV: weighted-F1 " in done.output


def test_seeds_and_coverage_in_metrics(tmp_path: Path):
    from dataclasses import replace

    from fusion.evaluate import evaluate
    from fusion.seeds import train_seeds

    cache = make_tensor_cache(tmp_path / "cache")
    config = TrainConfig(epochs=2, batch_size=16, num_threads=1, seeds=2)
    result = train_seeds(cache, tmp_path / "m", SMALL, config, echo=lambda *_: None)
    assert [r["seed"] for r in result["seeds"]] == [13, 14]
    assert result["best_dev_weighted_f1"] == max(r["best_dev_weighted_f1"]
                                                 for r in result["seeds"])
    metrics = evaluate(cache, tmp_path / "m")
    seeds = metrics["seeds"]
    assert seeds["n"] == 2 and seeds["best_dev_seed"] == result["seed"]
    assert seeds["dev_weighted_f1_mean"] == pytest.approx(np.mean(
        [r["best_dev_weighted_f1"] for r in result["seeds"]]))
    assert len(seeds["values"]["test_weighted_f1"]) == 2
    test = load_split(cache, "test", torch.device("cpu"))
    coverage = metrics["coverage"]
    assert coverage["n"] == 24 and coverage["text"] == int(test["text_present"].sum())
    none = ~(test["text_present"] | test["acoustic_present"] | test["facial_present"])
    assert coverage["none"] == int(none.sum())
    written = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert written["seeds"]["n"] == 2 and written["coverage"] == coverage
    single = train_seeds(cache, tmp_path / "m", SMALL, replace(config, seeds=1),
                         echo=lambda *_: None)
    assert "seeds" not in single and not (tmp_path / "m" / "seeds.json").exists()


def test_a_seed_ensemble_predicts_the_mean_of_its_members(tmp_path: Path):
    from fusion.evaluate import evaluate, load_model
    from fusion.metrics import weighted_f1
    from fusion.model import SeedEnsemble
    from fusion.seeds import train_seeds, trained_as
    from fusion.train import predict

    def as_trained(folder: Path):
        return load_model(folder)[0]

    cache = make_tensor_cache(tmp_path / "cache")
    config = TrainConfig(epochs=2, batch_size=16, num_threads=1, seeds=2, combine="average")
    result = train_seeds(cache, tmp_path / "m", SMALL, config, echo=lambda *_: None)
    dev = load_split(cache, "dev", torch.device("cpu"))
    members = [predict(as_trained(tmp_path / "m" / "seeds" / s), dev, 32)[0]
               for s in ("13", "14")]
    model, saved = load_model(tmp_path / "m")
    assert isinstance(model, SeedEnsemble) and len(model.members) == 2
    probs, labels = predict(as_trained(tmp_path / "m"), dev, 32)
    assert np.abs(probs - np.mean(members, axis=0)).max() < 1e-5
    assert np.abs(members[0] - members[1]).max() > 1e-3  # two different models
    mean_f1 = weighted_f1(labels, probs.argmax(1), probs.shape[1])
    assert result["best_dev_weighted_f1"] == pytest.approx(mean_f1)
    assert trained_as(result) == "a seed ensemble of 2 runs"
    assert trained_as(result["seeds"][0]) == f"{result['seeds'][0]['epochs']} epochs"
    assert saved["dev"]["weighted_f1"] == pytest.approx(mean_f1)  # the ensemble's own
    assert saved["epoch"] == [load_model(tmp_path / "m" / "seeds" / s)[1]["epoch"]
                              for s in ("13", "14")]
    metrics = evaluate(cache, tmp_path / "m")
    assert metrics["seeds"]["combine"] == "average" and metrics["best_epoch"] == saved["epoch"]
    with pytest.raises(ValueError, match="train.combine 'vote' is unknown; use best"):
        train_seeds(cache, tmp_path / "x", SMALL, TrainConfig(combine="vote"))


def test_report_shows_seeds_and_the_scored_coverage(tmp_path: Path):
    from mcncl.report import build_report
    from tests.test_report import cells, make_run
    from vocabulary.layout import Layout

    make_run(tmp_path)
    path = tmp_path / "models" / "c" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["coverage"] = {"n": 2, "text": 2, "acoustic": 1, "facial": 0, "none": 0}
    metrics["seeds"] = {"n": 3, "best_dev_seed": 14, "dev_weighted_f1_mean": 0.5,
                        "dev_weighted_f1_std": 0.02, "test_weighted_f1_mean": 0.4,
                        "test_weighted_f1_std": 0.03}
    path.write_text(json.dumps(metrics))
    page = build_report(Layout("c", tmp_path))
    assert cells(page, "<h2>Seeds</h2>") == ["3", "the best on dev", "14", "0.500 ± 0.020",
                                             "0.400 ± 0.030"]
    assert cells(page, "Modalities of the test") == ["2", "2", "1", "0", "0"]
    assert cells(page, "Coverage")[:2] == ["train", "4"]  # the feature coverage still follows


def test_batches_cut_padding_without_changing_predictions(tmp_path: Path):
    from fusion.data import load_meta, take
    from fusion.model import build_model
    from fusion.train import predict

    cache = make_tensor_cache(tmp_path / "cache")
    dev = load_split(cache, "dev", torch.device("cpu"))
    batch = take(dev, torch.tensor([0, 1]))
    assert batch["text"].shape[1] == int(torch.nonzero(dev["text_mask"][:2].any(0)).max()) + 1
    torch.manual_seed(0)
    model = build_model(load_meta(cache), SMALL)
    one, _ = predict(model, dev, 1)  # each utterance cut to its own length
    many, _ = predict(model, dev, 32)
    assert np.abs(one - many).max() < 1e-5
