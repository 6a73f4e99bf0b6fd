"""MCN-CL: a multimodal cross-attention network (our reading of arXiv 2511.10892).

Per-modality encoders project text tokens, acoustic LLD frames (plus the utterance's
functionals) and AU frames to ``d_model``; the facial encoder first runs EPSANet's pyramid
squeeze attention over time ("PSA", :class:`PyramidSqueezeAttention`). Then ``n_layers``
triple-query layers: each stream queries the other two (cross-attention, masked), then attends
to itself, then a feed-forward block; the three streams are updated together from the previous
layer's states (bidirectional). Masked attention pooling gives one vector per stream; a gate
weighs the streams present and a classifier reads the fused vector. The ``concat`` ablation
differs from ``cross`` only in the fusion: no cross-attention, and the gated stream vectors
are concatenated and projected back to ``d_model`` instead of summed. Each stream's pooled
vector is also the view the contrastive loss compares. Every stream has a learned null token
among its keys, so an utterance missing a modality attends to nothing harmful and never
divides by zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fusion.config import ModelConfig


class PyramidSqueezeAttention(nn.Module):
    """EPSANet's PSA (Zhang et al. 2021) over time: the channels are split into S groups, one
    per kernel size; each group is convolved over time with its kernel; one SE module (shared
    by the groups, as in EPSANet) gives each group a weight vector from its mean over the real
    frames; a softmax across the S groups (per channel) turns those into attention over scales,
    which reweights the groups before they are concatenated again (then a ReLU).

    Channels are zero-padded up to a multiple of S, so ``out_channels`` is the input width
    rounded up (equal to it when S divides it). Masked frames are zero before and after the
    convolutions and are left out of the squeeze.
    """

    def __init__(self, channels: int, kernels: tuple[int, ...], reduction: int):
        super().__init__()
        self.width = -(-channels // len(kernels))  # channels per group
        self.out_channels = self.width * len(kernels)
        self.convs = nn.ModuleList(
            nn.Conv1d(self.width, self.width, k, padding="same") for k in kernels)
        hidden = max(1, self.width // reduction)
        self.se = nn.Sequential(nn.Linear(self.width, hidden), nn.ReLU(),
                                nn.Linear(hidden, self.width), nn.Sigmoid())

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(batch, time, channels) → (batch, time, out_channels) and the attention over scales,
        (batch, S, channels per group), which sums to 1 over S."""
        keep = mask.unsqueeze(1).to(x.dtype)  # (B, 1, T)
        x = nn.functional.pad(x, (0, self.out_channels - x.shape[-1])).transpose(1, 2) * keep
        groups = x.split(self.width, dim=1)
        feats = torch.stack([conv(g) * keep for conv, g in zip(self.convs, groups, strict=True)],
                            dim=1)  # (B, S, width, T)
        squeezed = feats.sum(-1) / keep.sum(-1, keepdim=True).clamp(min=1)  # mean, real frames
        weights = torch.softmax(self.se(squeezed), dim=1)  # across the scales, per channel
        out = torch.relu(feats * weights.unsqueeze(-1)).flatten(1, 2).transpose(1, 2)
        return out, weights


class Encoder(nn.Module):
    def __init__(self, width: int, config: ModelConfig, max_len: int = 512,
                 extra: int = 0, pyramid: bool = False):
        super().__init__()
        self.pyramid = (PyramidSqueezeAttention(width, config.pyramid_kernels,
                                                config.se_reduction)
                        if pyramid and config.pyramid_kernels else None)
        inner = width if self.pyramid is None else self.pyramid.out_channels
        self.project = nn.Linear(inner, config.d_model)
        self.extra = nn.Linear(extra, config.d_model) if extra else None
        self.position = nn.Embedding(max_len, config.d_model)
        self.norm = nn.LayerNorm(config.d_model)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor, extra: Tensor | None = None) -> Tensor:
        if self.pyramid is not None:
            x = self.pyramid(x, mask)[0]
        h = self.project(x) + self.position(torch.arange(x.shape[1], device=x.device))
        if self.extra is not None and extra is not None:
            h = h + self.extra(extra).unsqueeze(1)
        return self.drop(self.norm(h))


class TripleQueryLayer(nn.Module):
    """Each stream queries the others (unless ``cross`` is false: the concat ablation), then
    itself, then a feed-forward block."""

    def __init__(self, names: tuple[str, ...], config: ModelConfig, cross: bool = True):
        super().__init__()
        d, heads, p = config.d_model, config.n_heads, config.dropout

        def block() -> nn.ModuleDict:
            parts = {
                "self": nn.MultiheadAttention(d, heads, dropout=p, batch_first=True),
                "ffn": nn.Sequential(nn.Linear(d, d * config.ffn_mult), nn.GELU(),
                                     nn.Dropout(p), nn.Linear(d * config.ffn_mult, d)),
                "n2": nn.LayerNorm(d), "n3": nn.LayerNorm(d),
            }
            if cross and len(names) > 1:  # one stream has nobody to query
                parts["cross"] = nn.MultiheadAttention(d, heads, dropout=p, batch_first=True)
                parts["n1"] = nn.LayerNorm(d)
            return nn.ModuleDict(parts)

        self.blocks = nn.ModuleDict({name: block() for name in names})
        self.drop = nn.Dropout(p)

    def forward(self, states: dict[str, Tensor], masks: dict[str, Tensor]) -> dict[str, Tensor]:
        updated = {}
        for name, b in self.blocks.items():
            x = states[name]
            others = [o for o in states if o != name]
            if "cross" in b:
                keys = torch.cat([states[o] for o in others], dim=1)
                key_mask = torch.cat([masks[o] for o in others], dim=1)
                q = b["n1"](x)
                x = x + self.drop(attend(b["cross"], q, keys, key_mask))
            q = b["n2"](x)
            x = x + self.drop(attend(b["self"], q, q, masks[name]))
            updated[name] = x + self.drop(b["ffn"](b["n3"](x)))
        return updated


def attend(attention: nn.MultiheadAttention, q: Tensor, kv: Tensor, present: Tensor) -> Tensor:
    """``q`` attends to the ``present`` rows of ``kv``. The padding goes in as a per-head
    ``attn_mask``, the same -inf entries ``key_padding_mask`` would add: torch checks the
    latter with a call that imports sympy (0.6 s at the start of every stage process)."""
    blocked = ~present[:, None, :].expand(-1, q.size(1), -1)
    return attention(q, kv, kv, attn_mask=blocked.repeat_interleave(attention.num_heads, 0),
                     need_weights=False)[0]


class AttentionPool(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.score = nn.Linear(d, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        scores = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        return (torch.softmax(scores, dim=-1).unsqueeze(-1) * x).sum(1)


def dialogues(x: Tensor, dialogue: Tensor, turn: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The rows of ``x`` as padded dialogues in turn order: ``order`` (rows sorted by dialogue,
    then turn), the padded (dialogues, longest, ...) tensor and each dialogue's length."""
    order = torch.argsort(dialogue * (int(turn.max()) + 1) + turn, stable=True)
    _, counts = torch.unique_consecutive(dialogue[order], return_counts=True)
    padded = nn.utils.rnn.pad_sequence(list(x[order].split(counts.tolist())), batch_first=True)
    return order, padded, counts


def undialogues(padded: Tensor, order: Tensor, counts: Tensor, like: Tensor) -> Tensor:
    """The inverse of :func:`dialogues`: the padded outputs back in the rows' own order."""
    steps = torch.cat([padded[i, :c] for i, c in enumerate(counts.tolist())])
    out = torch.empty(like.shape, dtype=steps.dtype, device=like.device)
    out[order] = steps
    return out


class DialogueContext(nn.Module):
    """A speaker-aware GRU over the utterances of each dialogue in the batch.

    Utterances are ordered by turn within their dialogue; each one's fused vector plus an
    embedding of its speaker (its index within the dialogue: 0 = first to speak) goes in, and
    the GRU's output is added back (residual). Forward only, an utterance sees its earlier
    turns (live use); with ``future`` the GRU is bidirectional and sees the later turns too.
    """

    def __init__(self, d: int, max_speakers: int, future: bool):
        super().__init__()
        self.speakers = max_speakers
        self.speaker = nn.Embedding(max_speakers, d)
        directions = 2 if future else 1
        self.rnn = nn.GRU(d, d // directions, batch_first=True, bidirectional=future)
        self.out = nn.Linear(directions * (d // directions), d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: Tensor, dialogue: Tensor, turn: Tensor, speaker: Tensor) -> Tensor:
        order, sequences, counts = dialogues(x + self.speaker(speaker % self.speakers),
                                             dialogue, turn)
        packed = nn.utils.rnn.pack_padded_sequence(sequences, counts.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        outputs, _ = self.rnn(packed)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True)
        # bfloat16 under CUDA autocast, where x may be float32
        return self.norm(x + undialogues(self.out(outputs), order, counts, x))


CONTEXTS = ("auto", "none", "past", "past_future")  # model.context


class MCNCL(nn.Module):
    def __init__(self, config: ModelConfig, dims: dict[str, int], n_functionals: int,
                 n_classes: int):
        super().__init__()
        self.config = config
        self.names = tuple(m for m in config.modalities if m in dims)
        if not self.names:
            raise ValueError(f"model.modalities {list(config.modalities)} has none of the "
                             f"features built ({', '.join(dims) or 'none'}).")
        d = config.d_model
        self.encoders = nn.ModuleDict({
            m: Encoder(dims[m], config, extra=n_functionals if m == "acoustic" else 0,
                       pyramid=m == "facial")
            for m in self.names})
        self.null = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, d)) for m in self.names})
        if config.fusion not in ("cross", "concat"):
            raise ValueError(f"model.fusion {config.fusion!r} is unknown; use cross or concat.")
        if config.context not in CONTEXTS[1:]:
            raise ValueError(f"model.context {config.context!r} is unknown; use auto, none, past "
                             "(earlier turns only) or past_future (the whole dialogue).")
        cross = config.fusion == "cross"
        self.layers = nn.ModuleList(TripleQueryLayer(self.names, config, cross)
                                    for _ in range(config.n_layers))
        self.pool = nn.ModuleDict({m: AttentionPool(d) for m in self.names})
        self.gate = nn.Linear(d * len(self.names), len(self.names))
        self.concat = None if cross else nn.Linear(d * len(self.names), d)
        self.context = None if config.context == "none" else DialogueContext(
            d, config.max_speakers, future=config.context == "past_future")
        self.n_classes = n_classes
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(d, d),
                                        nn.GELU(), nn.Linear(d, n_classes))

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], dict]:
        """Return logits, each stream's contrastive view (its pooled vector) and which
        utterances have it."""
        states, masks, present = {}, {}, {}
        for m in self.names:
            x, mask = batch[m].float(), batch[f"{m}_mask"].bool()
            present[m] = batch[f"{m}_present"].bool()
            extra = batch["functionals"].float() if m == "acoustic" else None
            h = self.encoders[m](x, mask, extra)
            null = self.null[m].expand(h.shape[0], 1, -1)
            states[m] = torch.cat([null, h], dim=1)
            masks[m] = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        for layer in self.layers:
            states = layer(states, masks)
        pooled = {m: self.pool[m](states[m], masks[m]) for m in self.names}
        stacked = torch.stack([pooled[m] for m in self.names], dim=1)  # (B, M, d)
        available = torch.stack([present[m] for m in self.names], dim=1)  # (B, M)
        gates = self.gate(stacked.flatten(1)).masked_fill(~available, float("-inf"))
        weights = torch.softmax(gates, dim=-1).nan_to_num(0.0)  # no modality: all zero
        gated = weights.unsqueeze(-1) * stacked
        fused = gated.sum(1) if self.concat is None else self.concat(gated.flatten(1))
        if self.context is not None:
            fused = self.context(fused, batch["dialogue"], batch["turn"], batch["speaker"])
        return self.classifier(fused), pooled, present


class SeedEnsemble(nn.Module):
    """Models trained with different seeds scored as one: the mean of their class
    probabilities, returned as log-probabilities so a softmax downstream gives that mean."""

    def __init__(self, members: list[MCNCL]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.config = members[0].config
        self.n_classes = members[0].n_classes

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict, dict]:
        probs = torch.stack([torch.softmax(m(batch)[0].float(), dim=-1)
                             for m in self.members]).mean(0)
        return probs.clamp_min(torch.finfo(probs.dtype).tiny).log(), {}, {}


def build_model(meta: dict, model_config: ModelConfig) -> MCNCL:
    """MCN-CL sized for the tensor cache whose ``meta.json`` is ``meta``."""
    dims = {m: int(d) for m, d in meta["dims"].items()}
    n_functionals = len(meta["normalisation"].get("functionals", {}).get("mean", []))
    return MCNCL(model_config, dims, n_functionals, len(meta["labels"]))


def model_from_checkpoint(saved: dict, device: torch.device = torch.device("cpu")
                          ) -> MCNCL | SeedEnsemble:
    """One model, or a seed ensemble when the checkpoint holds several (``members``)."""
    old_context = {True: "past_future", False: "none"}  # model.context was a bool (a BiGRU)
    config = ModelConfig(**{k: tuple(v) if isinstance(v, list) else
                            old_context[v] if k == "context" and isinstance(v, bool) else v
                            for k, v in saved["model_config"].items()})

    def restore(state: dict) -> MCNCL:
        model = build_model(saved["meta"], config).to(device)
        try:
            model.load_state_dict(state)
        except RuntimeError:  # its layers are an earlier version's (e.g. the PSA before EPSANet)
            raise ValueError("the checkpoint holds weights of an earlier version of MCN-CL's "
                             "layers; retrain it (`dvc repro` or `mcncl train`).") from None
        return model.eval()

    return (SeedEnsemble([restore(state) for state in saved["members"]]).eval()
            if "members" in saved else restore(saved["state_dict"]))
