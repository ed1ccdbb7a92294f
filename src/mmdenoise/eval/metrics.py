"""Ranking metrics from one hit matrix (DESIGN §4; MMRec's definitions).

Every metric is a per-user array computed from ``hits`` [B, Kmax] (1 where
the item at rank r is a held-out item of user b) and ``n_relevant`` [B]
(|held-out items| of user b), by cumulative sums over the rank axis.
"""
from __future__ import annotations

import torch

METRICS = ("recall", "ndcg", "precision", "map", "hit")


def ranking_metrics(hits: torch.Tensor, n_relevant: torch.Tensor, ks: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Per-user metrics at each K in ``ks`` (K ≤ hits.shape[1]) → {"recall@K": float64 [B], ...}.

    Recall@K    = hits@K / |held-out|             (not min(K, |held-out|))
    Precision@K = hits@K / K
    HitRate@K   = 1[hits@K > 0]
    NDCG@K      = Σ_{r<K} hit_r / log2(r + 2)  /  Σ_{r < min(|held-out|, K)} 1 / log2(r + 2)
    MAP@K       = Σ_{r<K} hit_r · Precision@(r+1)  /  min(|held-out|, K)
    """
    hits = hits.to(torch.float64)
    n = n_relevant.to(hits.device, torch.float64)
    k_max = hits.shape[1]
    ranks = torch.arange(1, k_max + 1, device=hits.device, dtype=torch.float64)
    discount = 1.0 / torch.log2(ranks + 1.0)
    cum_hits = hits.cumsum(1)
    dcg = (hits * discount).cumsum(1)
    ideal = discount.cumsum(0)
    ap = (hits * cum_hits / ranks).cumsum(1)
    out = {}
    for k in ks:
        if k > k_max:
            raise ValueError(f"K={k} exceeds the {k_max} ranks computed")
        found = cum_hits[:, k - 1]
        depth = torch.clamp(n, max=k)
        out[f"recall@{k}"] = found / n
        out[f"ndcg@{k}"] = dcg[:, k - 1] / ideal[(depth - 1).long()]
        out[f"precision@{k}"] = found / k
        out[f"map@{k}"] = ap[:, k - 1] / depth
        out[f"hit@{k}"] = (found > 0).to(torch.float64)
    return out
