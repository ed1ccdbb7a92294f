"""Degree-sensitive edge pruning of the user–item graph (FREEDOM's graph denoising, Zhou & Shen MM'23).

Each epoch a model trains on a sub-graph: ⌊keep_ratio·|E|⌋ training edges
drawn without replacement with probability ∝ 1/√(d_u d_i), so edges between
low-degree nodes survive more often than edges between hubs. Randomness comes
from torch's global RNG (``torch.multinomial`` on the weights' device), so a
torch seed fixes the draw.
"""
from __future__ import annotations

import torch

from .ops import csr_tensor


def edge_keep_weights(users: torch.Tensor, items: torch.Tensor, n_users: int, n_items: int) -> torch.Tensor:
    """1/√(d_u d_i) per edge: float32 [E], with d the degrees counted over the given edges.

    users, items: int64 [E] edge endpoints (duplicates count towards the degree).
    """
    degree_u = torch.bincount(users, minlength=n_users).float()
    degree_i = torch.bincount(items, minlength=n_items).float()
    return (degree_u[users] * degree_i[items]).rsqrt()


def sample_edges(weights: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """Indices of ⌊keep_ratio·E⌋ distinct edges drawn ∝ ``weights`` [E]: int64 [K], on ``weights``' device.

    One ``torch.multinomial`` call without replacement (global RNG).
    """
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio}")
    keep = int(keep_ratio * weights.numel())
    return torch.multinomial(weights, keep, replacement=False)


def pruned_adjacency(n_users: int, n_items: int, users: torch.Tensor, items: torch.Tensor,
                     weights: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """D^-1/2 A D^-1/2 of a degree-sensitively pruned edge set: sparse CSR float32 [(U+I), (U+I)],
    built on ``weights``' device (no copy through the host: FREEDOM prunes every epoch).

    users, items: int64 [E] training edges; weights: [E] keep weights
    (``edge_keep_weights``). Duplicate kept edges are merged (weight 1). The
    degrees of the normalisation are those of the kept edges; entry (r, c) is
    d_r^-1/2 · d_c^-1/2 computed in float64 (float32 on MPS), then stored as float32:
    the same numbers as ``symmetric_normalize(bipartite_adjacency(...))`` (tested).
    """
    kept = sample_edges(weights, keep_ratio)
    n = n_users + n_items
    u, i = users[kept], items[kept] + n_users
    keys = torch.unique(torch.cat([u * n + i, i * n + u]))  # sorted: CSR order, duplicates merged
    rows, cols = keys // n, keys % n
    per_row = torch.bincount(rows, minlength=n)
    exact = torch.float32 if keys.device.type == "mps" else torch.float64
    inv_sqrt = per_row.to(exact).pow(-0.5)  # rows without an edge (inf) are never read
    crow = torch.zeros(n + 1, dtype=torch.int64, device=keys.device)
    crow[1:] = per_row.cumsum(0)
    return csr_tensor(crow, cols, (inv_sqrt[rows] * inv_sqrt[cols]).to(torch.float32), (n, n))
