"""VBPR (He & McAuley, AAAI'16), generalised to any number of modalities.

Score (paper Eq. 2 without biases, as in MMRec): s_ui = γ_uᵀ γ_i + θ_uᵀ (Σ_m E_m f^m_i),
i.e. the user vector [γ_u ‖ θ_u] (2d) against the item vector
[γ_i ‖ Σ_m E_m f^m_i] (2d), where f^m_i are the item's raw features of
modality m and E_m a learnt linear map to d dimensions. A sum of per-modality
maps equals one map of the concatenated features; keeping them apart exposes
each modality's view through ``modality_item_emb``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..losses import l2_regularization
from .base import Backbone, Batch


@dataclass
class VBPRConfig:
    embedding_size: int = 64
    reg_weight: float = 1e-4


class VBPR(Backbone):
    """features: modality -> float32 [I, d_m] (stored as buffers)."""

    def __init__(self, n_users: int, n_items: int, features: dict[str, torch.Tensor],
                 embedding_size: int = 64, reg_weight: float = 1e-4):
        super().__init__()
        if not features:
            raise ValueError("VBPR needs at least one feature modality")
        self.modalities = list(features)
        self.user_embedding = nn.Embedding(n_users, 2 * embedding_size)
        self.item_embedding = nn.Embedding(n_items, embedding_size)
        self.projections = nn.ModuleDict({m: nn.Linear(x.shape[1], embedding_size, bias=False)
                                          for m, x in features.items()})
        for m, x in features.items():
            self.register_buffer(f"feat_{m}", x.to(torch.float32), persistent=False)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        for layer in self.projections.values():
            nn.init.xavier_uniform_(layer.weight)
        self.reg_weight = reg_weight

    def modality_item_emb(self) -> dict[str, torch.Tensor]:
        """{modality: E_m f^m [I, d]}."""
        return {m: self.projections[m](getattr(self, f"feat_{m}")) for m in self.modalities}

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        content = torch.stack(list(self.modality_item_emb().values())).sum(0)
        return self.user_embedding.weight, torch.cat([self.item_embedding.weight, content], dim=1)

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """reg_weight · ½ Σ‖e‖² / B over the batch's user and (ID ‖ content) item vectors."""
        return self.reg_weight * l2_regularization(user_emb[batch.users], item_emb[batch.pos_items],
                                                   item_emb[batch.neg_items])


def build(dataset, config: VBPRConfig) -> VBPR:
    features = {m: torch.from_numpy(np.array(x, dtype=np.float32)) for m, x in dataset.features.items()}
    return VBPR(dataset.n_users, dataset.n_items, features, config.embedding_size, config.reg_weight)
