"""Classification loss and the modality-specific supervised contrastive loss.

Contrastive loss for one modality's contrastive views (its pooled vectors, L2-normalised),
labels y, temperature τ. Anchors are the batch's utterances; keys are the batch's views
gathered from every rank (DDP). For each anchor i with at least one positive (same label,
another utterance: no copy of i itself) among the keys,

    L_i = -1/|P(i)| Σ_p log( e^{s_ip} / (Σ_{p'∈P(i)} e^{s_ip'} + Σ_{n∈N(i)} w_in e^{s_in}) )

with s_ij = z_i·z_j / τ. Hard-negative weighting (Robinson et al. 2021):
w_in = |N(i)| · softmax_n(β s_in), i.e. w ∝ exp(β z_i·z_n / τ), normalised to mean 1 over
the anchor's negatives. β is on the scale of the logits: β = 0 (every weight 1) is the plain
supervised contrastive loss (Khosla et al. 2020); at β = 1 a negative's share of the
denominator grows as exp(2 s) instead of exp(s); the default β = 2 (tuned on RAVDESS speaker
CV, docs/model.md) makes it exp(3 s). Weights are constants (no gradient through them), as in
Robinson et al.

The total is the classification loss plus λ × the mean of the modalities' contrastive losses.
Nothing reweights the classes: class weights, a logit-adjusted loss and a post-hoc logit
adjustment each cost weighted-F1 on data not tuned on (docs/model.md, "Class imbalance").
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def negative_weights(logits: Tensor, negatives: Tensor, beta: float) -> Tensor:
    """Weights of each anchor's negatives (rows), mean 1 over its negatives; 0 elsewhere.

    ``logits`` are the similarities divided by τ (the same scale as in the loss).
    """
    scores = (beta * logits).masked_fill(~negatives, float("-inf"))
    count = negatives.sum(1, keepdim=True)
    weights = torch.softmax(scores, dim=1).nan_to_num(0.0) * count
    return weights.detach()


def contrastive_loss(z: Tensor, labels: Tensor, temperature: float, beta: float,
                     keys: Tensor | None = None, key_labels: Tensor | None = None,
                     offset: int = 0, ids: Tensor | None = None,
                     key_ids: Tensor | None = None) -> Tensor:
    """Mean loss over anchors ``z`` that have a positive; 0 when none has.

    ``keys`` (default: ``z``) must hold ``z`` itself at rows ``offset``.. (an anchor is not its
    own positive); their labels are ``key_labels``. With utterance ``ids`` (and ``key_ids``,
    the keys' ids; default ``ids``, as the keys default to ``z``), any other copy of the
    anchor's own utterance among the keys (another rank's, a repeated row) is neither a
    positive nor a negative either.
    """
    z = F.normalize(z.float(), dim=1)
    if keys is None:
        keys, key_labels = z, labels
    else:
        keys = F.normalize(keys.float(), dim=1)
    s = z @ keys.T / temperature
    same = labels.unsqueeze(1) == key_labels.unsqueeze(0)
    itself = torch.zeros_like(same)
    itself[torch.arange(len(z)), offset + torch.arange(len(z))] = True
    if ids is not None:
        key_ids = ids if key_ids is None else key_ids
        itself |= ids.unsqueeze(1) == key_ids.unsqueeze(0)
    positives, negatives = same & ~itself, ~same & ~itself
    has_positive = positives.any(1)
    if not has_positive.any():  # also a batch where nobody has this modality
        return (z.sum() + keys.sum()) * 0.0  # keeps every rank's graph the same shape
    # positives count once in the denominator
    weights = negative_weights(s, negatives, beta) + positives.float()
    s_max = s.max(dim=1, keepdim=True).values.detach()
    exp = torch.exp(s - s_max) * weights
    log_denominator = torch.log(exp.sum(1, keepdim=True).clamp(min=1e-12)) + s_max
    log_prob = s - log_denominator
    per_anchor = (log_prob * positives).sum(1)[has_positive] / positives.sum(1)[has_positive]
    return -per_anchor.mean()


class _GatherRows(torch.autograd.Function):
    """all_gather of equally padded rows; the gradient of every copy flows back to its rank."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.rank, ctx.n = dist.get_rank(), len(x)
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return torch.stack(out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # each rank's loss has a gradient for every rank's rows
        return grad[ctx.rank]


def gather_rows(x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, int]:
    """Every rank's rows of ``x`` (differentiable) and ``labels`` (any row shape), and where
    this rank's start.

    Without a process group (or with one rank) it returns its inputs and offset 0.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, labels, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    sizes = [torch.zeros(1, dtype=torch.long, device=x.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([len(x)], device=x.device))
    sizes = [int(n) for n in sizes]
    top = max(sizes)
    padded = torch.cat([x, x.new_zeros(top - len(x), *x.shape[1:])])
    padded_labels = torch.cat([labels, labels.new_full((top - len(x), *labels.shape[1:]), -1)])
    rows = _GatherRows.apply(padded)
    label_rows = [torch.empty_like(padded_labels) for _ in range(world)]
    dist.all_gather(label_rows, padded_labels)
    keep = [slice(0, n) for n in sizes]
    return (torch.cat([rows[r, k] for r, k in enumerate(keep)]),
            torch.cat([label_rows[r][k] for r, k in enumerate(keep)]), sum(sizes[:rank]))


def total_loss(logits: Tensor, views: dict[str, Tensor], present: dict[str, Tensor],
               labels: Tensor, config,
               ids: Tensor | None = None) -> Tensor:
    """Classification loss plus λ × the mean over modalities of their contrastive losses
    (``config``: TrainConfig), so λ means the same whatever the number of modalities.

    ``ids`` (the batch's ``index``) name each row's utterance, so no utterance is its own
    positive.
    """
    loss = F.cross_entropy(logits.float(), labels)
    if config.contrastive_weight <= 0 or not views:
        return loss
    contrastive = loss.new_zeros(())
    for m in views:
        z, y = views[m][present[m]], labels[present[m]]
        u = None if ids is None else ids[present[m]]
        tags = y.unsqueeze(1) if u is None else torch.stack([y, u], dim=1)
        batch_keys, batch_tags, offset = gather_rows(z, tags)  # labels (and ids) go together
        batch_labels = batch_tags[:, 0]
        key_ids = None if u is None else batch_tags[:, 1]
        contrastive = contrastive + contrastive_loss(
            z, y, config.temperature, config.hard_negative_beta, batch_keys, batch_labels,
            offset, u, key_ids)
    return loss + config.contrastive_weight * contrastive / len(views)
