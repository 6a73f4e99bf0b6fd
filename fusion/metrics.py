"""The numbers the paper reports (weighted-F1 first) and the confusion matrix."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def scores(labels: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict:
    """Per-class and macro scores cover the classes that occur (as label or prediction)."""
    present = sorted(set(labels.tolist()) | set(predicted.tolist()))
    per_class = f1_score(labels, predicted, labels=present, average=None, zero_division=0)
    return {
        "weighted_f1": float(f1_score(labels, predicted, average="weighted", zero_division=0)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, labels=present, average="macro",
                                   zero_division=0)),
        "per_class_f1": {names[i]: float(f) for i, f in zip(present, per_class, strict=True)},
        "confusion": confusion_matrix(labels, predicted, labels=range(len(names))).tolist(),
        "n": int(len(labels)),
    }
