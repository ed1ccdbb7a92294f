"""Degree-sensitive edge pruning of the user–item graph (FREEDOM's graph denoising, Zhou & Shen MM'23).

Each epoch a model trains on a sub-graph: ⌊keep_ratio·|E|⌋ training edges
drawn without replacement with probability ∝ 1/√(d_u d_i), so edges between
low-degree nodes survive more often than edges between hubs. Randomness comes
from torch's global RNG (``torch.multinomial`` on the weights' device), so a
torch seed fixes the draw.
"""
from __future__ import annotations

import torch

from .adjacency import bipartite_adjacency, to_torch_csr
from .normalize import symmetric_normalize


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
    """D^-1/2 A D^-1/2 of a degree-sensitively pruned edge set: sparse CSR float32 [(U+I), (U+I)] on the CPU.

    users, items: int64 [E] training edges; weights: [E] keep weights
    (``edge_keep_weights``). The degrees of the normalisation are those of
    the kept edges. The result is built on the CPU (scipy); move it with
    ``SparseOperator(...).to(device, dtype)``.
    """
    kept = sample_edges(weights, keep_ratio).cpu().numpy()
    graph = bipartite_adjacency(n_users, n_items, users.cpu().numpy()[kept], items.cpu().numpy()[kept])
    return to_torch_csr(symmetric_normalize(graph))
