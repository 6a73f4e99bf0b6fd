"""Which hidden states of a transformer encoder an extractor keeps (text and Hugging Face audio).

One vocabulary for both settings (``text.layers``, ``acoustic.hf_layer``): ``last`` is the
last hidden state, a number k is layer k (0 = the embedding or CNN output), and ``mean`` is the
mean of every hidden state, 0 to the last.
"""

from __future__ import annotations


def layer_choice(setting: str, layers: int, name: str) -> int | None:
    """The index of the chosen hidden state, or None for the mean of all ``layers`` + 1."""
    if setting == "last":
        return layers
    if setting == "mean":
        return None
    try:
        layer = int(setting)
    except ValueError:
        layer = -1
    if not 0 <= layer <= layers:
        raise ValueError(f"{name} {setting!r} is not last, mean or a layer number from 0 to "
                         f"{layers}; fix it.")
    return layer


def chosen_states(states, layer: int | None):
    """The chosen hidden state from a model's tuple of ``hidden_states`` (torch tensors)."""
    import torch

    return torch.stack(tuple(states)).mean(0) if layer is None else states[layer]
