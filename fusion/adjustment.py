"""Post-hoc logit adjustment against class imbalance (Menon et al., ICLR 2021).

Cross-entropy on an imbalanced corpus learns the train prior: MELD's fear and disgust are
rarely predicted. After training, the kept model predicts ``argmax log p(y|x) − τ log
prior(y)``, with the τ of :data:`TAUS` that gives the best dev macro-F1; τ 0 (the model as
trained) wins ties, so a balanced corpus keeps its predictions. The checkpoint records τ and
the train split's log prior (``posthoc_adjustment``), and every prediction made from it
(evaluate, predict, cross-validation) applies them. On MELD text (docs/model.md) it lifted
held-out macro-F1 and weighted-F1 alike, selected on an inner dev split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fusion.checkpoint import load_checkpoint, save_checkpoint
from fusion.data import load_split
from fusion.metrics import scores

TAUS = tuple(i / 4 for i in range(13))  # 0, 0.25, ..., 3


def log_prior(labels: Tensor, n_classes: int) -> Tensor:
    """Log class frequencies of ``labels`` (the train split's); a class never seen counts once."""
    counts = torch.bincount(labels, minlength=n_classes).float().clamp(min=1)
    return (counts / counts.sum()).log()


def adjusted_predictions(probs: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """The classes ``argmax log probs − tau · prior`` (``prior``: log class prior)."""
    return (np.log(np.maximum(probs, 1e-12)) - tau * prior).argmax(1)


def choose_tau(probs: np.ndarray, labels: np.ndarray, prior: np.ndarray,
               names: list[str]) -> float:
    """The τ of :data:`TAUS` with the best macro-F1 of ``probs`` against ``labels``; the
    smallest on a tie."""
    macro = [scores(labels, adjusted_predictions(probs, prior, tau), names)["macro_f1"]
             for tau in TAUS]
    return TAUS[int(np.argmax(macro))]


def unadjusted(saved: dict) -> dict:
    """The checkpoint ``saved`` as trained: without its post-hoc adjustment, with its raw dev
    scores."""
    found = saved.get("posthoc_adjustment")
    raw = {k: v for k, v in saved.items() if k != "posthoc_adjustment"}
    if found:
        raw["dev"] = found["unadjusted_dev"]
    return raw


def adjust_checkpoint(path: Path, tensor_dir: Path) -> float:
    """Choose τ on the dev split of ``tensor_dir`` for the checkpoint at ``path`` (from its
    predictions without adjustment), record it there with the train split's log prior, make
    its ``dev`` scores the adjusted ones (the raw ones kept beside τ), and return τ."""
    from fusion.model import model_from_checkpoint
    from fusion.train import predict

    saved = unadjusted(load_checkpoint(path))  # choose afresh, from the raw model
    names = saved["meta"]["labels"]
    cpu = torch.device("cpu")
    prior = log_prior(load_split(tensor_dir, "train", cpu)["label"], len(names)).numpy()
    probs, labels = predict(model_from_checkpoint(saved), load_split(tensor_dir, "dev", cpu),
                            128)
    tau = choose_tau(probs, labels, prior, names)
    dev = scores(labels, adjusted_predictions(probs, prior, tau), names)
    saved["posthoc_adjustment"] = {"tau": tau, "log_prior": prior.tolist(),
                                   "unadjusted_dev": saved["dev"]}
    saved["dev"] = dev  # the scores of the model as it now predicts
    save_checkpoint(saved, path)
    return tau


def logit_bias(saved: dict) -> torch.Tensor | None:
    """What a checkpoint's post-hoc adjustment adds to the logits (−τ · log prior), or None
    for a checkpoint without one (written before it existed)."""
    found = saved.get("posthoc_adjustment")
    if not found:
        return None
    return -float(found["tau"]) * torch.tensor(found["log_prior"], dtype=torch.float32)
