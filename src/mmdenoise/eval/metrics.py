"""Ranking metrics from one hit matrix (docs/design.md, Evaluation protocol).

Every metric is a per-user array computed from ``hits`` [B, Kmax] (1 where
the item at rank r + 1 of user b is one of b's held-out items, else 0) and
``n_relevant`` [B] (|held-out items| of user b) by cumulative sums over the
rank axis, so each metric is one line of tensor maths and runs on the device
of ``hits``. Keys are lower-case ``name@K``: ``recall@20``, ``ndcg@20``,
``precision@20``, ``map@20``, ``hit@20``.
"""
from __future__ import annotations

from typing import Iterable

import torch

METRICS = ("recall", "ndcg", "precision", "map", "hit")


def ranking_metrics(hits: torch.Tensor, n_relevant: torch.Tensor,
                    ks: Iterable[int]) -> dict[str, torch.Tensor]:
    """Per-user Recall, NDCG, Precision, MAP and HitRate at each K in ``ks``.

    hits: bool or 0/1 float [B, Kmax]; column r is rank r + 1.
    n_relevant: integer or float [B], every entry ≥ 1 (|held-out| of each user;
        it may exceed Kmax).
    ks: each K in 1..Kmax.
    Returns ``{"recall@K": float64 [B], ...}`` (every metric of ``METRICS`` at
    every K) on the device of ``hits``.

    With h_r = hits[b, r] (r = 0-based rank), H@K = Σ_{r<K} h_r,
    n = n_relevant[b] and m = min(n, K):

        recall@K    = H@K / n                                (not / min(n, K))
        precision@K = H@K / K
        hit@K       = 1[H@K > 0]
        ndcg@K      = Σ_{r<K} h_r / log2(r + 2)  /  Σ_{r<m} 1 / log2(r + 2)
        map@K       = Σ_{r<K} h_r · (H@(r+1) / (r + 1))  /  m
    """
    if hits.ndim != 2:
        raise ValueError(f"hits must be 2-D [users, ranks], got shape {tuple(hits.shape)}")
    if n_relevant.shape != hits.shape[:1]:
        raise ValueError(f"n_relevant has shape {tuple(n_relevant.shape)}; expected ({hits.shape[0]},)")
    k_max = hits.shape[1]
    ks = tuple(ks)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= k_max:
            raise ValueError(f"K={k!r} must be an integer in 1..{k_max} (the ranks in hits)")
    hits = hits.to(torch.float64)
    n = n_relevant.to(device=hits.device, dtype=torch.float64)
    if bool((n < 1).any()):
        raise ValueError("every user needs at least one held-out item (n_relevant ≥ 1)")

    ranks = torch.arange(1, k_max + 1, device=hits.device, dtype=torch.float64)
    discount = 1.0 / torch.log2(ranks + 1.0)          # 1 / log2(r + 2) for 0-based r
    found = hits.cumsum(1)                            # H@(r+1)
    dcg = (hits * discount).cumsum(1)
    ideal_dcg = discount.cumsum(0)                    # IDCG over the first j positions, j = 1..Kmax
    sum_precision = (hits * found / ranks).cumsum(1)  # Σ h_r · precision@(r+1)

    out: dict[str, torch.Tensor] = {}
    for k in ks:
        depth = n.clamp(max=k)                        # min(n, K)
        out[f"recall@{k}"] = found[:, k - 1] / n
        out[f"ndcg@{k}"] = dcg[:, k - 1] / ideal_dcg[depth.long() - 1]
        out[f"precision@{k}"] = found[:, k - 1] / k
        out[f"map@{k}"] = sum_precision[:, k - 1] / depth
        out[f"hit@{k}"] = (found[:, k - 1] > 0).to(torch.float64)
    return out
