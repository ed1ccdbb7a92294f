"""MF-BPR (Rendle et al., UAI'09): user and item embeddings scored by dot product."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..losses import l2_regularization
from .base import Backbone, Batch


@dataclass
class MFConfig:
    embedding_size: int = 64
    reg_weight: float = 1e-4


class MF(Backbone):
    """forward() -> (user_emb [U, d], item_emb [I, d]), the raw embedding tables."""

    def __init__(self, n_users: int, n_items: int, embedding_size: int = 64, reg_weight: float = 1e-4):
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, embedding_size)
        self.item_embedding = nn.Embedding(n_items, embedding_size)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        self.reg_weight = reg_weight

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """reg_weight · ½ Σ‖e‖² / B over the batch's user, positive and negative embeddings."""
        return self.reg_weight * l2_regularization(self.user_embedding(batch.users),
                                                   self.item_embedding(batch.pos_items),
                                                   self.item_embedding(batch.neg_items))


def build(dataset, config: MFConfig) -> MF:
    return MF(dataset.n_users, dataset.n_items, config.embedding_size, config.reg_weight)
