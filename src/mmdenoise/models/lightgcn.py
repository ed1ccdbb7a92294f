"""LightGCN (He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR'20): ID embeddings propagated on the normalised user–item graph.

E^(l+1) = Â E^(l) with Â = D^-1/2 A D^-1/2 (paper Eq. 7), no weights and no
non-linearity; the final embedding is the mean over layers 0..L (Eq. 8 with
α_l = 1/(L+1)); the score is the dot product (Eq. 5). L2 regularisation acts
on the layer-0 ("ego") embeddings of the batch (Eq. 15).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..config import Range, setting
from ..graphs import SparseOperator, normalized_adjacency
from .base import Backbone, Batch, id_embeddings


@dataclass
class LightGCNConfig:
    """embedding_size: d; n_layers: L (0 gives MF); reg_weight: weight of the ego-embedding L2 term."""

    embedding_size: int = setting(64, Range(min=1))
    n_layers: int = setting(2, Range(min=0))
    reg_weight: float = setting(1e-4, Range(min=0))


def propagate(graph: Callable[[torch.Tensor], torch.Tensor], embeddings: torch.Tensor,
              n_layers: int) -> torch.Tensor:
    """Mean of [E, ÂE, Â²E, ..., Â^L E]: [N, d].

    graph: x ↦ Âx for x [N, d] (a :class:`SparseOperator`); embeddings: E [N, d].
    Differentiable in E. A running sum, not a stacked [L+1, N, d] tensor.
    """
    layer = total = embeddings
    for _ in range(n_layers):
        layer = graph(layer)
        total = total + layer
    return total / (n_layers + 1)


class LightGCN(Backbone):
    """LightGCN over a fixed normalised bipartite graph.

    adjacency: torch sparse CSR float [(U+I), (U+I)], symmetric, users first
        (``graphs.normalized_adjacency``); held as a :class:`SparseOperator`
        (moves with ``.to``, deep-copies, not in ``state_dict``).
    Parameters: user/item ego embeddings [U, d], [I, d], xavier-uniform
    initialised. forward() -> (user_emb [U, d], item_emb [I, d]) after L layers.
    """

    def __init__(self, n_users: int, n_items: int, adjacency: torch.Tensor, embedding_size: int = 64,
                 n_layers: int = 2, reg_weight: float = 1e-4):
        super().__init__()
        n = n_users + n_items
        if tuple(adjacency.shape) != (n, n):
            raise ValueError(f"adjacency must be [{n}, {n}] (users then items), got {tuple(adjacency.shape)}")
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.reg_weight = reg_weight
        self.user_embedding, self.item_embedding = id_embeddings(n_users, n_items, embedding_size)
        self.graph = SparseOperator(adjacency, symmetric=True)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = propagate(self.graph, ego, self.n_layers)
        return out[: self.n_users], out[self.n_users:]

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """reg_weight · ½ Σ‖e⁰‖² / B over the batch's ego user, positive and negative embeddings."""
        return self.batch_l2(batch, self.user_embedding.weight, self.item_embedding.weight)


def build(dataset, config: LightGCNConfig) -> LightGCN:
    """LightGCN on ``dataset``'s training graph (shared, cached ``normalized_adjacency``)."""
    return LightGCN(dataset.n_users, dataset.n_items, normalized_adjacency(dataset), config.embedding_size,
                    config.n_layers, config.reg_weight)
