"""The one training toolkit: what MCN-CL's loop (``fusion/train.py``) and the text encoder's
fine-tuning (``fusion/text_finetune.py``) share: the optimiser, the learning-rate schedule,
seeding, the device, and the bookkeeping of the best epoch on dev (early stopping).

torch is imported inside the functions that need it, so that importing this stays cheap (the
``mcncl extract`` command reads fine-tuned encoder cards through ``fusion/text_finetune.py``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def adamw(groups: Iterable, weight_decay: float, lr: float = 0.0) -> torch.optim.AdamW:
    """AdamW, fused: one kernel per step whose square root is the IEEE one. The unfused step's
    ``torch.sqrt`` is not exact and rounds differently per CPU even with the maths pinned, so a
    portable corpus's model differed in the last bits between CPUs (docs/development.md)."""
    import torch

    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)


def lr_factor(step: int, warmup: int, total: int, decay: str = "cosine") -> float:
    """The learning rate of optimizer step ``step`` (0-based) as a share of the peak rate.

    Linear warm-up over ``warmup`` steps to 1, then ``cosine`` decay that reaches 0 exactly at
    the last step (``total - 1``; MCN-CL, where ``total`` counts the real batches of every
    epoch), or ``linear`` decay that reaches 0 at ``total`` (fine-tuning).
    """
    if step < warmup:
        return (step + 1) / warmup
    if decay == "linear":
        return max(0.0, (total - step) / max(1, total - warmup))
    progress = min(1.0, (step - warmup) / max(1, total - 1 - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress))


def seed_everything(seed: int) -> None:
    """Seed every random stream a training loop draws from (Python's, numpy's, torch's)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str, setting: str = "train.device",
                error: type[Exception] = ValueError) -> torch.device:
    """The device a setting (``setting``: auto | cpu | cuda) names; ``error`` when it names
    CUDA and none is visible."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise error(f"{setting} is cuda but no CUDA device is visible; use auto or cpu.")
    return torch.device(name)


def new_state() -> dict:
    """The bookkeeping of a loop that keeps its best epoch on dev: the epochs done, the best
    dev score so far, the epochs since it last improved, and one log row per epoch (MCN-CL
    saves it as it is in ``last.safetensors``, for ``--resume``)."""
    return {"epoch": 0, "best": -1.0, "stale": 0, "log": []}


def improves(state: dict, score: float) -> bool:
    """Whether an epoch's dev ``score`` beats the best so far (a tie does not)."""
    return score > state["best"]


def record_epoch(state: dict, row: dict, score: float, improved: bool) -> None:
    """Log the epoch ``row`` (with its ``epoch``) and its dev ``score``; ``improved``: what
    :func:`improves` said (under several ranks, rank 0's answer)."""
    state["log"].append(row)
    state["best"] = score if improved else state["best"]
    state["stale"] = 0 if improved else state["stale"] + 1
    state["epoch"] = row["epoch"]
