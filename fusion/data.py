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
            rank: int = 0, world: int = 1) -> Iterator[dict[str, Tensor]]:
    """Batches in order, or shuffled by ``generator``; with several ranks each takes its part."""
    n = size(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order[rank::world].to(split["label"].device)
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        yield {k: v[chosen] for k, v in split.items()}
