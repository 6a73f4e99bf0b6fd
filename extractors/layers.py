"""Which hidden states of a transformer encoder an extractor keeps (text and Hugging Face audio).

One vocabulary for both settings (``text.layers``, ``acoustic.hf_layer``): ``last`` is the
last hidden state, a number k is layer k (0 = the embedding or CNN output), ``a-b`` is the mean
of layers a to b, and ``mean`` is the mean of every hidden state, 0 to the last.
"""

from __future__ import annotations

import re


def layer_choice(setting: str, layers: int, name: str) -> tuple[int, ...]:
    """The indices of the hidden states averaged (one index: that state alone)."""
    if setting == "last":
        return (layers,)
    if setting == "mean":
        return tuple(range(layers + 1))
    span = re.fullmatch(r"(\d+)(?:-(\d+))?", str(setting).strip())
    first, last = (int(span[1]), int(span[2] or span[1])) if span else (-1, -1)
    if not 0 <= first <= last <= layers:
        raise ValueError(f"{name} {setting!r} is not last, mean, a layer number or a range "
                         f"a-b of layers from 0 to {layers}; fix it.")
    return tuple(range(first, last + 1))


def chosen_states(states, layers: tuple[int, ...]):
    """The mean of the chosen hidden states from a model's tuple of ``hidden_states``."""
    import torch

    if len(layers) == 1:
        return states[layers[0]]
    return torch.stack([states[i] for i in layers]).mean(0)
