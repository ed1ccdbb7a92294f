"""Pairwise ranking losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """Bayesian personalised ranking: mean of −log σ(s_ui − s_uj).

    pos_scores, neg_scores: [B]; weights: optional [B] per-pair weights
    (the weighted mean divides by B, not by the weight sum). Returns a scalar.
    """
    per_pair = -F.logsigmoid(pos_scores - neg_scores)
    if weights is not None:
        per_pair = per_pair * weights
    return per_pair.mean()


def l2_regularization(*embeddings: torch.Tensor) -> torch.Tensor:
    """½ Σ‖e‖² over the given embedding rows, divided by the batch size (rows of the first).

    The LightGCN / MMRec convention: penalise only the embeddings a batch uses.
    """
    batch = embeddings[0].shape[0]
    return sum(e.pow(2).sum() for e in embeddings) / (2 * batch)
