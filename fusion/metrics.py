"""The numbers the paper reports (weighted-F1 first) and the confusion matrix.

Computed from the confusion matrix with numpy: the same values as scikit-learn's
``f1_score`` / ``accuracy_score`` (``zero_division=0``; a test compares them), without the
~2 s that importing ``sklearn.metrics`` adds to every train and evaluate stage.
"""

from __future__ import annotations

import numpy as np


def scores(labels: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict:
    """Per-class and macro scores cover the classes that occur (as label or prediction)."""
    labels, predicted = np.asarray(labels, np.int64), np.asarray(predicted, np.int64)
    n = len(names)
    confusion = np.bincount(labels * n + predicted, minlength=n * n).reshape(n, n)
    support, hits = confusion.sum(1), np.diag(confusion)
    f1 = _per_class_f1(confusion)
    present = sorted(set(labels.tolist()) | set(predicted.tolist()))
    return {
        "weighted_f1": float((f1 * support).sum() / support.sum()) if support.sum() else 0.0,
        "accuracy": float(hits.sum() / len(labels)) if len(labels) else 0.0,
        "macro_f1": float(f1[present].mean()) if present else 0.0,
        "per_class_f1": {names[i]: float(f1[i]) for i in present},
        "confusion": confusion.tolist(),
        "n": int(len(labels)),
    }


def weighted_f1(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    labels, predicted = np.asarray(labels, np.int64), np.asarray(predicted, np.int64)
    return scores(labels, predicted, [str(i) for i in range(n_classes)])["weighted_f1"]


def _per_class_f1(confusion: np.ndarray) -> np.ndarray:
    """F1 = 2 TP / (2 TP + FP + FN) per class; 0 where the class is neither true nor guessed."""
    denominator = confusion.sum(0) + confusion.sum(1)
    return np.divide(2 * np.diag(confusion), denominator, out=np.zeros(len(confusion)),
                     where=denominator > 0)
