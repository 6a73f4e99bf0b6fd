"""Classification loss and the modality-specific supervised contrastive loss.

Contrastive loss for one modality's pooled vectors z (L2-normalised), labels y, temperature τ:
for each anchor i with at least one positive (same label, j ≠ i),

    L_i = -1/|P(i)| Σ_p log( e^{s_ip} / (Σ_{p'∈P(i)} e^{s_ip'} + Σ_{n∈N(i)} w_in e^{s_in}) )

with s = z·zᵀ/τ. Hard-negative weighting (``exp``): w_in = |N(i)| · softmax_n(β s_in), so the
weights average 1 and the most similar negatives count most; with ``none`` (or β = 0) every
w_in = 1 and this is the plain supervised contrastive loss (Khosla et al., 2020). Weights are
constants (no gradient through them), as in Robinson et al. (2021).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def negative_weights(similarity: Tensor, negatives: Tensor, beta: float) -> Tensor:
    """Weights of each anchor's negatives (rows), mean 1 over its negatives; 0 elsewhere."""
    logits = (beta * similarity).masked_fill(~negatives, float("-inf"))
    count = negatives.sum(1, keepdim=True)
    weights = torch.softmax(logits, dim=1).nan_to_num(0.0) * count
    return weights.detach()


def contrastive_loss(z: Tensor, labels: Tensor, temperature: float, hard_negatives: str,
                     beta: float) -> Tensor:
    """Mean loss over anchors that have a positive; 0 when none has."""
    z = F.normalize(z.float(), dim=1)
    s = z @ z.T / temperature
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    positives, negatives = same & ~eye, ~same
    has_positive = positives.any(1)
    if not has_positive.any():  # also a batch where nobody has this modality
        return z.sum() * 0.0
    if hard_negatives == "exp":
        weights = negative_weights(s * temperature, negatives, beta)
    elif hard_negatives == "none":
        weights = negatives.float()
    else:
        raise ValueError(f"train.hard_negatives {hard_negatives!r} is unknown; use exp or none.")
    weights = weights + positives.float()  # positives count once in the denominator
    s_max = s.max(dim=1, keepdim=True).values.detach()
    exp = torch.exp(s - s_max) * weights
    log_denominator = torch.log(exp.sum(1, keepdim=True).clamp(min=1e-12)) + s_max
    log_prob = s - log_denominator
    per_anchor = (log_prob * positives).sum(1)[has_positive] / positives.sum(1)[has_positive]
    return -per_anchor.mean()


def total_loss(logits: Tensor, pooled: dict[str, Tensor], present: dict[str, Tensor],
               labels: Tensor, class_weights: Tensor | None, config) -> Tensor:
    """Classification loss plus λ × each modality's contrastive loss (``config``: TrainConfig)."""
    loss = classification_loss(logits.float(), labels, class_weights, config.focal_gamma)
    if config.contrastive_weight > 0:
        loss = loss + config.contrastive_weight * sum(
            contrastive_loss(pooled[m][present[m]], labels[present[m]], config.temperature,
                             config.hard_negatives, config.hard_negative_beta) for m in pooled)
    return loss


def classification_loss(logits: Tensor, labels: Tensor, class_weights: Tensor | None,
                        focal_gamma: float) -> Tensor:
    if focal_gamma <= 0:
        return F.cross_entropy(logits, labels, weight=class_weights)
    log_p = F.log_softmax(logits, dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
    loss = -((1 - log_p.exp()) ** focal_gamma) * log_p
    if class_weights is not None:
        loss = loss * class_weights[labels]
    return loss.mean()
