"""MF-BPR (Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI'09).

Matrix factorisation scored by the dot product s_ui = p_uᵀ q_i, trained with
the backbone's default BPR loss (paper Eq. 6 with the MF model of §5.1) plus
L2 on the embeddings the batch uses (the λ_Θ‖Θ‖² term, applied per batch as
in LightGCN/MMRec).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import Range, setting
from .base import Backbone, Batch, id_embeddings


@dataclass
class MFConfig:
    """embedding_size: d; reg_weight: weight of the batch-embedding L2 term."""

    embedding_size: int = setting(64, Range(min=1))
    reg_weight: float = setting(1e-4, Range(min=0))


class MF(Backbone):
    """User and item embedding tables P [U, d], Q [I, d].

    Initialisation: xavier-uniform (Glorot), the same as LightGCN here, so the
    two ID-only models start from the same distribution (LightGCN with
    L = 0 is exactly this model).
    forward() -> (P [U, d], Q [I, d]), the tables themselves.
    """

    def __init__(self, n_users: int, n_items: int, embedding_size: int = 64, reg_weight: float = 1e-4):
        super().__init__()
        self.reg_weight = reg_weight
        self.user_embedding, self.item_embedding = id_embeddings(n_users, n_items, embedding_size)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.user_embedding.weight, self.item_embedding.weight

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """reg_weight · ½ Σ‖e‖² / B over the batch's user, positive and negative embeddings."""
        return self.batch_l2(batch, user_emb, item_emb)


def build(dataset, config: MFConfig) -> MF:
    """MF sized for ``dataset`` (only n_users and n_items are read)."""
    return MF(dataset.n_users, dataset.n_items, config.embedding_size, config.reg_weight)
