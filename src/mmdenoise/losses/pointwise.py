"""Pointwise (binary cross-entropy) losses on logits, per sample."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_with_logits(logits: torch.Tensor, labels: torch.Tensor | float) -> torch.Tensor:
    """Per-sample −[y log σ(x) + (1 − y) log σ(−x)], computed stably.

    logits: [N]; labels: [N] in [0, 1] (or a scalar for all). Returns [N] (no reduction).
    """
    labels = torch.as_tensor(labels, dtype=logits.dtype, device=logits.device).expand_as(logits)
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none")


def pointwise_bce(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BCE of positives (label 1) and sampled negatives (label 0), per sample.

    pos_scores, neg_scores: logits [B] (the backbone's s_ui, s_uj). Returns
    (−log σ(s_ui) [B], −log σ(−s_uj) [B]).
    """
    return bce_with_logits(pos_scores, 1.0), bce_with_logits(neg_scores, 0.0)


def truncated_bce(pos_scores: torch.Tensor, neg_scores: torch.Tensor,
                  drop_rate: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """T-CE (Wang et al., WSDM'21, the truncated loss): BCE with the largest-loss positives dropped.

    Of the N = 2B samples (B positives with label 1, B negatives with label 0),
    N − ⌊(1 − drop_rate)·N⌋ are dropped (the released code's count), chosen as the
    largest loss × label, i.e. only positives, the largest-loss ones first (at
    most all B). pos_scores, neg_scores: logits [B]; drop_rate in [0, 1].
    Returns (mean BCE over the kept samples (scalar), per-positive BCE [B],
    dropped mask bool [B]). The selection is not differentiated.
    """
    pos_loss, neg_loss = pointwise_bce(pos_scores, neg_scores)
    n_samples = pos_loss.numel() + neg_loss.numel()
    n_drop = min(n_samples - int((1.0 - drop_rate) * n_samples), pos_loss.numel())
    dropped = torch.zeros_like(pos_loss, dtype=torch.bool)
    if n_drop > 0:
        dropped[torch.topk(pos_loss.detach(), n_drop).indices] = True
    kept_sum = pos_loss.masked_fill(dropped, 0.0).sum() + neg_loss.sum()
    return kept_sum / (n_samples - n_drop), pos_loss, dropped


def reweighted_bce(pos_scores: torch.Tensor, neg_scores: torch.Tensor,
                   beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """R-CE (Wang et al., WSDM'21, the reweighted loss): BCE, each term weighted by its detached prediction.

    A positive's term is weighted by σ(s_ui)^β, a negative's by (1 − σ(s_uj))^β
    (the paper's weight ŷ^β applied to the prediction of the sample's own label,
    as in the released code), so hard samples, likely noise, count less.
    pos_scores, neg_scores: logits [B]; beta ≥ 0. Returns (mean of the 2B
    weighted terms (scalar), positive weights [B], negative weights [B]); the
    weights are detached (no gradient flows through them).
    """
    pos_loss, neg_loss = pointwise_bce(pos_scores, neg_scores)
    # σ(x)^β = exp(−β · BCE): the per-sample loss is already −log σ of the right sign
    pos_weight = torch.exp(-beta * pos_loss.detach())
    neg_weight = torch.exp(-beta * neg_loss.detach())
    return torch.cat([pos_weight * pos_loss, neg_weight * neg_loss]).mean(), pos_weight, neg_weight
