"""MCN-CL: a multimodal cross-attention network (our reading of arXiv 2511.10892).

Per-modality encoders project text tokens, acoustic LLD frames (plus the utterance's
functionals) and AU frames to ``d_model``; the facial encoder first runs a temporal pyramid
(parallel 1-D convolutions at several kernel sizes, squeeze-and-excitation over the AU
channels: our reading of "PSA"). Then ``n_layers`` triple-query layers: each stream queries
the other two (cross-attention, masked), then attends to itself, then a feed-forward block;
the three streams are updated together from the previous layer's states (bidirectional).
Masked attention pooling gives one vector per stream; a gate weighs the streams present and
a classifier reads the fused vector. With ``projection_dim`` > 0 each stream's pooled vector
also goes through a small projection head (as in SupCon) whose output is the view the
contrastive loss compares; the classifier never sees it. Every stream has a learned null
token among its keys, so an utterance missing a modality attends to nothing harmful and never
divides by zero.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fusion.config import ModelConfig


class TemporalPyramid(nn.Module):
    """Parallel temporal convolutions over AU sequences with channel attention."""

    def __init__(self, channels: int, kernels: tuple[int, ...], reduction: int):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv1d(channels, channels, k, padding=k // 2) for k in kernels)
        width = channels * len(kernels)
        self.excite = nn.Sequential(
            nn.Linear(width, max(1, width // reduction)), nn.ReLU(),
            nn.Linear(max(1, width // reduction), width), nn.Sigmoid())
        self.out_channels = width

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        # x: (batch, time, channels); masked frames are zero before and after the convolution
        x = (x * mask.unsqueeze(-1)).transpose(1, 2)
        y = torch.cat([torch.relu(b(x)) for b in self.branches], dim=1)  # (B, C*k, T)
        frames = mask.sum(1, keepdim=True).clamp(min=1)
        squeezed = (y * mask.unsqueeze(1)).sum(-1) / frames  # masked mean over time
        return (y * self.excite(squeezed).unsqueeze(-1)).transpose(1, 2)


class Encoder(nn.Module):
    def __init__(self, width: int, config: ModelConfig, max_len: int = 512,
                 extra: int = 0, pyramid: bool = False):
        super().__init__()
        self.pyramid = (TemporalPyramid(width, config.pyramid_kernels, config.se_reduction)
                        if pyramid else None)
        inner = self.pyramid.out_channels if pyramid else width
        self.project = nn.Linear(inner, config.d_model)
        self.extra = nn.Linear(extra, config.d_model) if extra else None
        self.position = nn.Embedding(max_len, config.d_model)
        self.norm = nn.LayerNorm(config.d_model)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor, extra: Tensor | None = None) -> Tensor:
        if self.pyramid is not None:
            x = self.pyramid(x, mask)
        h = self.project(x) + self.position(torch.arange(x.shape[1], device=x.device))
        if self.extra is not None and extra is not None:
            h = h + self.extra(extra).unsqueeze(1)
        return self.drop(self.norm(h))


class TripleQueryLayer(nn.Module):
    """Each stream queries the others, then itself, then a feed-forward block."""

    def __init__(self, names: tuple[str, ...], config: ModelConfig):
        super().__init__()
        d, heads, p = config.d_model, config.n_heads, config.dropout

        def block() -> nn.ModuleDict:
            parts = {
                "self": nn.MultiheadAttention(d, heads, dropout=p, batch_first=True),
                "ffn": nn.Sequential(nn.Linear(d, d * config.ffn_mult), nn.GELU(),
                                     nn.Dropout(p), nn.Linear(d * config.ffn_mult, d)),
                "n2": nn.LayerNorm(d), "n3": nn.LayerNorm(d),
            }
            if len(names) > 1:  # one stream has nobody to query
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
            if others:
                keys = torch.cat([states[o] for o in others], dim=1)
                key_mask = torch.cat([masks[o] for o in others], dim=1)
                q = b["n1"](x)
                x = x + self.drop(b["cross"](q, keys, keys, key_padding_mask=~key_mask,
                                             need_weights=False)[0])
            q = b["n2"](x)
            x = x + self.drop(b["self"](q, q, q, key_padding_mask=~masks[name],
                                        need_weights=False)[0])
            updated[name] = x + self.drop(b["ffn"](b["n3"](x)))
        return updated


class AttentionPool(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.score = nn.Linear(d, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        scores = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        return (torch.softmax(scores, dim=-1).unsqueeze(-1) * x).sum(1)


class DialogueContext(nn.Module):
    """A speaker-aware bidirectional GRU over the utterances of each dialogue in the batch.

    Utterances are ordered by turn within their dialogue; each one's fused vector plus an
    embedding of its speaker (its index within the dialogue: 0 = first to speak) goes in, and
    the GRU's output is added back (residual).
    """

    def __init__(self, d: int, max_speakers: int):
        super().__init__()
        self.speakers = max_speakers
        self.speaker = nn.Embedding(max_speakers, d)
        self.rnn = nn.GRU(d, d // 2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * (d // 2), d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: Tensor, dialogue: Tensor, turn: Tensor, speaker: Tensor) -> Tensor:
        order = torch.argsort(dialogue * (int(turn.max()) + 1) + turn, stable=True)
        _, counts = torch.unique_consecutive(dialogue[order], return_counts=True)
        inputs = x[order] + self.speaker(speaker[order] % self.speakers)
        sequences = nn.utils.rnn.pad_sequence(list(inputs.split(counts.tolist())),
                                              batch_first=True)
        packed = nn.utils.rnn.pack_padded_sequence(sequences, counts.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        outputs, _ = self.rnn(packed)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(outputs, batch_first=True)
        steps = torch.cat([outputs[i, :c] for i, c in enumerate(counts.tolist())])
        projected = self.out(steps)  # bfloat16 under CUDA autocast, where x may be float32
        context = torch.empty(x.shape, dtype=projected.dtype, device=x.device)
        context[order] = projected
        return self.norm(x + context)


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
        layers = config.n_layers if config.fusion == "cross" else 0
        if config.fusion not in ("cross", "concat"):
            raise ValueError(f"model.fusion {config.fusion!r} is unknown; use cross or concat.")
        self.layers = nn.ModuleList(TripleQueryLayer(self.names, config) for _ in range(layers))
        self.pool = nn.ModuleDict({m: AttentionPool(d) for m in self.names})
        self.gate = nn.Linear(d * len(self.names), len(self.names)) \
            if config.fusion == "cross" else None
        self.heads = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, config.projection_dim))
            for m in self.names}) if config.projection_dim > 0 else None
        fused = d * len(self.names) if config.fusion == "concat" else d
        self.context = DialogueContext(fused, config.max_speakers) if config.context else None
        self.n_classes = n_classes
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(fused, d),
                                        nn.GELU(), nn.Linear(d, n_classes))

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor], dict]:
        """Return logits, each stream's contrastive view and which utterances have it.

        The view is the stream's pooled vector, or its projection with ``projection_dim``.
        """
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
        if self.gate is None:  # concat
            fused = (stacked * available.unsqueeze(-1)).flatten(1)
        else:
            gates = self.gate(stacked.flatten(1)).masked_fill(~available, float("-inf"))
            weights = torch.softmax(gates, dim=-1).nan_to_num(0.0)  # no modality: all zero
            fused = (weights.unsqueeze(-1) * stacked).sum(1)
        if self.context is not None:
            fused = self.context(fused, batch["dialogue"], batch["turn"], batch["speaker"])
        if self.heads is not None:
            pooled = {m: self.heads[m](pooled[m]) for m in self.names}
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
    config = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in saved["model_config"].items()})

    def restore(state: dict) -> MCNCL:
        model = build_model(saved["meta"], config).to(device)
        model.load_state_dict(state)
        return model.eval()

    if "members" in saved:
        return SeedEnsemble([restore(state) for state in saved["members"]]).eval()
    return restore(saved["state_dict"])
