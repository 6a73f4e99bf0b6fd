"""Loading the tensor cache and cutting it into batches (no Parquet is parsed here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor


def load_meta(tensor_dir: Path) -> dict:
    path = Path(tensor_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no tensor cache; run `mcncl tensors` "
                                "(DVC stage build_tensors) first.")
    return json.loads(path.read_text(encoding="utf-8"))


def load_split(tensor_dir: Path, split: str, device: torch.device) -> dict[str, Tensor]:
    tensors = load_file(str(Path(tensor_dir) / f"{split}.safetensors"))
    return {k: v.to(device) for k, v in tensors.items()}


def size(split: dict[str, Tensor]) -> int:
    return len(split["label"])


def batches(split: dict[str, Tensor], batch_size: int, generator: torch.Generator | None = None,
            rank: int = 0, world: int = 1, by_dialogue: bool = False
            ) -> Iterator[dict[str, Tensor]]:
    """Batches in order, or shuffled by ``generator``; with several ranks each takes its part.

    ``by_dialogue`` keeps each dialogue's utterances together in one batch (in turn order),
    for the dialogue-context encoder. Each batch carries ``index``: its rows in ``split``.
    """
    groups = _groups(split, by_dialogue)
    if generator is not None:
        groups = [groups[i] for i in torch.randperm(len(groups), generator=generator)]
    groups = groups[rank::world]
    current: list[Tensor] = []
    count = 0
    for group in groups + [None]:
        if group is None or (current and count + len(group) > batch_size):
            if current:
                chosen = torch.cat(current).to(split["label"].device)
                yield {"index": chosen, **{k: v[chosen] for k, v in split.items()}}
            current, count = [], 0
        if group is not None:
            current.append(group)
            count += len(group)


def _groups(split: dict[str, Tensor], by_dialogue: bool) -> list[Tensor]:
    n = size(split)
    if not by_dialogue:
        return list(torch.arange(n).split(1))
    dialogue, turn = split["dialogue"].cpu(), split["turn"].cpu()
    order = torch.argsort(dialogue * (int(turn.max()) + 1 if n else 1) + turn, stable=True)
    _, counts = torch.unique_consecutive(dialogue[order], return_counts=True)
    return list(order.split(counts.tolist()))
