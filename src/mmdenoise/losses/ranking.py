"""Pairwise ranking losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bpr_per_pair(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """−log σ(s_ui − s_uj) of each pair: [B] from pos_scores, neg_scores [B]."""
    return -F.logsigmoid(pos_scores - neg_scores)


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """Bayesian personalised ranking: mean of −log σ(s_ui − s_uj) (:func:`bpr_per_pair`).

    pos_scores, neg_scores: [B]; weights: optional [B] per-pair weights
    (the weighted mean divides by B, not by the weight sum). Returns a scalar.
    """
    per_pair = bpr_per_pair(pos_scores, neg_scores)
    if weights is not None:
        per_pair = per_pair * weights
    return per_pair.mean()


def truncated_bpr(pos_scores: torch.Tensor, neg_scores: torch.Tensor, drop_rate: float,
                  weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BPR with T-CE's truncation (Wang et al., WSDM'21) on pairs: the ⌊drop_rate·B⌋ pairs of largest
    −log σ(s_ui − s_uj) are dropped, the rest averaged (weighted by ``weights`` [B] as in
    :func:`bpr_loss`, divided by the kept count). pos_scores, neg_scores: [B]; drop_rate in [0, 1].
    Returns (scalar loss, dropped mask bool [B]); the selection is not differentiated."""
    per_pair = bpr_per_pair(pos_scores, neg_scores)
    n_drop = max(0, min(int(drop_rate * per_pair.numel()), per_pair.numel() - 1))  # one pair always kept
    dropped = torch.zeros_like(per_pair, dtype=torch.bool)
    if n_drop > 0:
        dropped[torch.topk(per_pair.detach(), n_drop).indices] = True
    if weights is not None:
        per_pair = per_pair * weights
    return per_pair.masked_fill(dropped, 0.0).sum() / max(per_pair.numel() - n_drop, 1), dropped


def l2_regularization(*embeddings: torch.Tensor) -> torch.Tensor:
    """½ Σ‖e‖² over the given embedding rows, divided by the batch size (rows of the first).

    The LightGCN / MMRec convention: penalise only the embeddings a batch uses.
    """
    batch = embeddings[0].shape[0]
    return sum(e.pow(2).sum() for e in embeddings) / (2 * batch)
