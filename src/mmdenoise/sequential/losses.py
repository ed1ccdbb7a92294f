"""Objectives of the sequential models: sampled softmax (Eq. 5–6) and Demure's contrastive loss (Eq. 14).

Pure functions of tensors, usable with any user encoder.
"""
from __future__ import annotations

import torch


def sampled_softmax_loss(user: torch.Tensor, target_emb: torch.Tensor, negative_emb: torch.Tensor,
                         targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Mean −log p'(i⁺ | u) over the batch with shared sampled negatives (Eq. 5–6).

    user: [B, d]; target_emb: [B, d] (embedding of each row's target i⁺);
    negative_emb: [N, d] (the sampled set I⁻, shared by every row);
    targets: int64 [B]; negatives: int64 [N] (item ids; a negative equal to the
    row's target is an accidental hit and is left out of that row's sum).
    ψ(u, i) = uᵀi. Returns a scalar.
    """
    positive = (user * target_emb).sum(-1, keepdim=True)                     # [B, 1]
    negative = user @ negative_emb.T                                         # [B, N]
    negative = negative.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), -torch.inf)
    logits = torch.cat([positive, negative], dim=1)
    return (torch.logsumexp(logits, dim=1) - positive.squeeze(1)).mean()


def contrastive_loss(user: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor,
                     similarity: str = "dot", temperature: float = 1.0) -> torch.Tensor:
    """Demure's contrastive objective (Eq. 14), mean over the batch.

    L = −log Σ_j exp(φ(u_j⁺, u)) / (Σ_j exp(φ(u_j⁺, u)) + Σ_k exp(φ(u_k⁻, u)))

    user: [B, d]; positives: [B, J, d] (u_j⁺); negatives: [B, J, d] (u_k⁻).
    φ: the dot product (paper) or, with ``similarity="cosine"``, the cosine;
    either divided by ``temperature`` (1 in the paper). Computed with
    logsumexp. Gradients reach all three inputs.
    """
    if similarity == "cosine":
        user = torch.nn.functional.normalize(user, dim=-1)
        positives = torch.nn.functional.normalize(positives, dim=-1)
        negatives = torch.nn.functional.normalize(negatives, dim=-1)
    elif similarity != "dot":
        raise ValueError(f"similarity must be 'dot' or 'cosine', got {similarity!r}")
    pos = torch.einsum("bd,bjd->bj", user, positives) / temperature
    neg = torch.einsum("bd,bjd->bj", user, negatives) / temperature
    return (torch.logsumexp(torch.cat([pos, neg], dim=1), dim=1) - torch.logsumexp(pos, dim=1)).mean()
