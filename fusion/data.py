"""Loading the tensor cache and cutting it into batches (no Parquet is parsed here).

An epoch's plan is its list of batches (rows of the split), fixed before the epoch starts: the
rows (or, with ``by_dialogue``, whole dialogues in turn order) are shuffled and packed greedily
into batches of at most ``batch_size`` utterances. Under several ranks the batches are dealt
round robin and the plan is padded by wrapping around, so every rank takes the same number of
steps (a rank that ran out would hang the others in DistributedDataParallel). Plans for all
epochs are made up front from the seed, so training knows its real number of steps.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from fusion.config import RENAMED, without_deleted_tensors
from vocabulary import MODALITIES


def load_meta(tensor_dir: Path) -> dict:
    path = Path(tensor_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tensor cache; run `mcncl tensors` "
                                "(DVC stage build_tensors) first.")
    meta = json.loads(path.read_text(encoding="utf-8"))
    old = [m for m in meta["dims"] if m in RENAMED]
    if old:  # its tensors are named so too; the model would silently go without them
        raise ValueError(f"{path}: a tensor cache of an earlier version (modalities "
                         f"{', '.join(old)}); rebuild it with `mcncl tensors` (DVC stage "
                         "build_tensors).")
    return without_deleted_tensors(meta)  # a setting deleted since is not a difference


def load_split(tensor_dir: Path, split: str, device: torch.device) -> dict[str, Tensor]:
    tensors = load_file(str(Path(tensor_dir) / f"{split}.safetensors"))
    return {k: v.to(device) for k, v in tensors.items()}


def size(split: dict[str, Tensor]) -> int:
    return len(split["label"])


def epoch_plan(split: dict[str, Tensor], batch_size: int, generator: torch.Generator | None,
               rank: int = 0, world: int = 1, by_dialogue: bool = False) -> list[Tensor]:
    """This rank's batches (row indices) of one epoch; every rank gets as many."""
    if not by_dialogue:  # one utterance per group: packing is cutting
        order = torch.arange(size(split)) if generator is None else torch.randperm(
            size(split), generator=generator)
        return _deal(list(order.split(batch_size)), rank, world)
    groups = _groups(split, by_dialogue)
    if generator is not None:
        groups = [groups[i] for i in torch.randperm(len(groups), generator=generator)]
    plan, current, count = [], [], 0
    for group in groups:
        if current and count + len(group) > batch_size:
            plan.append(torch.cat(current))
            current, count = [], 0
        current.append(group)
        count += len(group)
    if current:
        plan.append(torch.cat(current))
    return _deal(plan, rank, world)


def _deal(plan: list[Tensor], rank: int, world: int) -> list[Tensor]:
    """Batches round robin; the plan wraps around so every rank gets as many."""
    if world == 1 or not plan:
        return plan
    per_rank = math.ceil(len(plan) / world)
    return [plan[i % len(plan)] for i in range(per_rank * world)][rank::world]


SEQUENCES = MODALITIES


def is_conversation(split: dict[str, Tensor]) -> bool:
    """Whether ``split`` holds a dialogue of more than one utterance (a conversational corpus,
    which ``model.context: auto`` reads as one; single utterances are each their own)."""
    dialogue = split["dialogue"]
    return bool(len(dialogue)) and len(torch.unique(dialogue)) < len(dialogue)


def take(split: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    """The batch of ``rows``; ``index`` says which rows of ``split`` they are.

    Each sequence is cut after the batch's last valid frame: the padding after it is masked
    everywhere, so the model computes the same for fewer positions (MELD's transcripts fill
    about a third of the 40 token slots).
    """
    rows = rows.to(split["label"].device)
    batch = {"index": rows, **{k: v[rows] for k, v in split.items()}}
    for m in SEQUENCES:
        if f"{m}_mask" in batch:
            used = torch.nonzero(batch[f"{m}_mask"].any(0))
            length = int(used.max()) + 1 if len(used) else 1
            batch[m], batch[f"{m}_mask"] = batch[m][:, :length], batch[f"{m}_mask"][:, :length]
    return batch


def batches(split: dict[str, Tensor], batch_size: int, generator: torch.Generator | None = None,
            rank: int = 0, world: int = 1, by_dialogue: bool = False
            ) -> Iterator[dict[str, Tensor]]:
    """Batches in order, or shuffled by ``generator``; with several ranks each takes its part.

    ``by_dialogue`` keeps each dialogue's utterances together in one batch (in turn order),
    for the dialogue-context encoder. Each batch carries ``index``: its rows in ``split``.
    """
    for rows in epoch_plan(split, batch_size, generator, rank, world, by_dialogue):
        yield take(split, rows)


def _groups(split: dict[str, Tensor], by_dialogue: bool) -> list[Tensor]:
    n = size(split)
    if not by_dialogue:
        return list(torch.arange(n).split(1))
    dialogue, turn = split["dialogue"].cpu(), split["turn"].cpu()
    order = torch.argsort(dialogue * (int(turn.max()) + 1 if n else 1) + turn, stable=True)
    _, counts = torch.unique_consecutive(dialogue[order], return_counts=True)
    return list(order.split(counts.tolist()))
