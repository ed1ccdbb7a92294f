"""LightGCN (He et al., SIGIR'20): ID embeddings propagated on the normalised user–item graph.

E^(l+1) = Â E^(l), final embedding = mean over layers 0..L (paper Eq. 8–9 with
α_l = 1/(L+1)); regularisation on the layer-0 ("ego") embeddings of the batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..graphs import normalized_adjacency, spmm
from ..losses import l2_regularization
from .base import Backbone, Batch


@dataclass
class LightGCNConfig:
    embedding_size: int = 64
    n_layers: int = 2
    reg_weight: float = 1e-4


def propagate(adjacency: torch.Tensor, embeddings: torch.Tensor, n_layers: int) -> torch.Tensor:
    """Mean of [E, ÂE, Â²E, ..., Â^L E]: [N, d] for a symmetric sparse Â [N, N] and E [N, d]."""
    layers = [embeddings]
    for _ in range(n_layers):
        layers.append(spmm(adjacency, layers[-1]))
    return torch.stack(layers).mean(0)


class LightGCN(Backbone):
    """adjacency: sparse [(U+I), (U+I)], users first (see graphs.normalized_adjacency)."""

    def __init__(self, n_users: int, n_items: int, adjacency: torch.Tensor, embedding_size: int = 64,
                 n_layers: int = 2, reg_weight: float = 1e-4):
        super().__init__()
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.user_embedding = nn.Embedding(n_users, embedding_size)
        self.item_embedding = nn.Embedding(n_items, embedding_size)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        # derived from the data, so not part of the state dict
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.reg_weight = reg_weight

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = propagate(self.adjacency, ego, self.n_layers)
        return out[: self.n_users], out[self.n_users:]

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        return self.reg_weight * l2_regularization(self.user_embedding(batch.users),
                                                   self.item_embedding(batch.pos_items),
                                                   self.item_embedding(batch.neg_items))


def build(dataset, config: LightGCNConfig) -> LightGCN:
    return LightGCN(dataset.n_users, dataset.n_items, normalized_adjacency(dataset), config.embedding_size,
                    config.n_layers, config.reg_weight)
