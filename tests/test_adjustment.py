"""Post-hoc logit adjustment (fusion/adjustment.py): chosen on dev, carried by the checkpoint,
applied by every prediction made from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fusion.adjustment import (
    TAUS,
    adjust_checkpoint,
    adjusted_predictions,
    choose_tau,
    log_prior,
    unadjusted,
)
from fusion.checkpoint import MODEL, load_checkpoint, save_checkpoint
from fusion.config import ModelConfig, TrainConfig
from fusion.data import load_split
from fusion.evaluate import evaluate, load_model
from fusion.metrics import scores
from fusion.model import model_from_checkpoint
from fusion.train import predict, train
from tests.tensor_cache import make_tensor_cache

NAMES = ["common", "rare"]


def test_a_rare_class_the_model_underpredicts_gets_a_positive_tau():
    # 90 common, 10 rare; the rare ones get 0.4 for their class: never predicted raw
    labels = np.array([0] * 90 + [1] * 10)
    probs = np.array([[0.8, 0.2]] * 90 + [[0.6, 0.4]] * 10)
    prior = np.log(np.array([0.9, 0.1]))
    tau = choose_tau(probs, labels, prior, NAMES)
    raw = scores(labels, probs.argmax(1), NAMES)["macro_f1"]
    adjusted = scores(labels, adjusted_predictions(probs, prior, tau), NAMES)["macro_f1"]
    assert tau > 0 and adjusted == 1.0 and raw < 0.5
    assert adjusted_predictions(probs, prior, tau).tolist() == labels.tolist()


def test_the_log_prior_is_the_train_frequencies_and_an_unseen_class_counts_once():
    np.testing.assert_allclose(log_prior(torch.tensor([0, 0, 0, 1]), 3).exp().numpy(),
                               [3 / 5, 1 / 5, 1 / 5])


def test_a_model_that_is_right_keeps_tau_zero():
    labels = np.array([0] * 90 + [1] * 10)
    probs = np.where(labels[:, None] == np.arange(2), 0.9, 0.1)
    assert choose_tau(probs, labels, np.log(np.array([0.9, 0.1])), NAMES) == 0.0


def test_training_records_tau_and_every_prediction_applies_it(tmp_path: Path):
    cache = make_tensor_cache(tmp_path / "cache")
    config = TrainConfig(epochs=2, batch_size=16, lr=2e-3, num_threads=1)
    train(cache, tmp_path / "m", ModelConfig(d_model=16, n_heads=2, n_layers=1), config,
          echo=lambda *_: None)
    saved = load_checkpoint(tmp_path / "m" / MODEL)
    found = saved["posthoc_adjustment"]
    labels = saved["meta"]["labels"]
    assert found["tau"] in TAUS and len(found["log_prior"]) == len(labels)
    train_labels = load_split(cache, "train", torch.device("cpu"))["label"].numpy()
    counts = np.bincount(train_labels, minlength=len(labels)).clip(min=1)
    np.testing.assert_allclose(found["log_prior"], np.log(counts / counts.sum()), rtol=1e-5)

    # force what a corpus with a rare class would record (the toy cache is near balanced):
    # evaluate and predict follow it
    test = load_split(cache, "test", torch.device("cpu"))
    raw, truth = predict(model_from_checkpoint(unadjusted(saved)), test, 8)
    common = np.bincount(raw.argmax(1), minlength=len(labels)).argmax()
    skewed = np.log(np.where(np.arange(len(labels)) == common, 0.98, 0.02 / (len(labels) - 1)))
    forced = {**saved, "posthoc_adjustment": {**found, "tau": 2.0, "log_prior": skewed.tolist()}}
    save_checkpoint(forced, tmp_path / "m" / MODEL)
    expected = adjusted_predictions(raw, skewed, 2.0)
    assert expected.tolist() != raw.argmax(1).tolist()  # the adjustment changes predictions
    model, _ = load_model(tmp_path / "m")
    probs, _ = predict(model, test, 8)
    assert probs.argmax(1).tolist() == expected.tolist()
    result = evaluate(cache, tmp_path / "m", echo=lambda *_: None)
    assert result["posthoc_tau"] == 2.0
    assert result["macro_f1"] == scores(truth, expected, labels)["macro_f1"]

    # choosing again starts from the raw model and its raw dev scores
    assert adjust_checkpoint(tmp_path / "m" / MODEL, cache) == found["tau"]
    again = load_checkpoint(tmp_path / "m" / MODEL)
    assert again["posthoc_adjustment"]["unadjusted_dev"] == found["unadjusted_dev"]
    assert again["dev"] == saved["dev"]


def test_a_checkpoint_from_before_the_adjustment_loads_with_none(tmp_path: Path):
    cache = make_tensor_cache(tmp_path / "cache")
    train(cache, tmp_path / "m", ModelConfig(d_model=16, n_heads=2, n_layers=1),
          TrainConfig(epochs=1, batch_size=16, num_threads=1), echo=lambda *_: None)
    saved = unadjusted(load_checkpoint(tmp_path / "m" / MODEL))
    model = model_from_checkpoint(saved)
    assert torch.equal(model.logit_bias, torch.zeros(len(saved["meta"]["labels"])))
    assert "logit_bias" not in model.state_dict()  # not a weight: old checkpoints load
