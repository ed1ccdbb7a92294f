"""VBPR (He & McAuley, "VBPR: Visual Bayesian Personalized Ranking from Implicit Feedback",
AAAI'16), generalised from one visual feature to any number of modalities.

The paper's predictor α + β_u + β_i + γ_uᵀγ_i + θ_uᵀ(E f_i) + β'ᵀf_i without its
bias terms (as in MMRec; α and β_u cannot change a user's ranking, and the
item biases β_i, β'ᵀf_i are dropped with them):

    s_ui = γ_uᵀ γ_i + θ_uᵀ (Σ_m E_m f^m_i)

i.e. the user vector [γ_u ‖ θ_u] (2d) against the item vector
[γ_i ‖ Σ_m E_m f^m_i] (2d): both halves are d wide (MMRec's layout), so the
latent and the content parts each get the full d. E_m: a bias-free linear
map d_m → d per modality; their sum equals one map of the concatenated
features (the paper's E f_i), and keeping them apart exposes each modality's
view through ``modality_item_emb``. Features are used raw, not row-normalised
(as in the paper and MMRec): the per-modality map learns each modality's scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import Range, setting
from .base import Backbone, Batch
from .features import FeatureLinear, ModalityFeatures, feature_tensors


@dataclass
class VBPRConfig:
    """embedding_size: d (user and item vectors are 2d); reg_weight: batch-embedding L2 weight."""

    embedding_size: int = setting(64, Range(min=1))
    reg_weight: float = setting(1e-4, Range(min=0))


class VBPR(Backbone):
    """features: {modality: float [I, d_m]}, at least one (kept as buffers, not trained).

    Parameters: user [U, 2d] = [γ_u ‖ θ_u]; item IDs γ_i [I, d]; one bias-free
    linear map E_m [d, d_m] per modality; all xavier-uniform initialised.
    forward() -> (user_emb [U, 2d], item_emb [I, 2d]).
    """

    def __init__(self, n_users: int, n_items: int, features: dict[str, torch.Tensor],
                 embedding_size: int = 64, reg_weight: float = 1e-4):
        super().__init__()
        self.reg_weight = reg_weight
        self.features = ModalityFeatures(features)
        for name, x in self.features.items():
            if x.shape[0] != n_items:
                raise ValueError(f"features of {name!r} have {x.shape[0]} rows, expected n_items={n_items}")
        self.user_embedding = nn.Embedding(n_users, 2 * embedding_size)
        self.item_embedding = nn.Embedding(n_items, embedding_size)
        self.projections = nn.ModuleList(FeatureLinear(dim, embedding_size, bias=False) for dim in self.features.dims())
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        for layer in self.projections:
            nn.init.xavier_uniform_(layer.weight)

    def modality_item_emb(self) -> dict[str, torch.Tensor]:
        """{modality: E_m f^m [I, d]}, the content half of the item vector split by modality."""
        return self.features.map(self.projections)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        content = sum(self.modality_item_emb().values())
        return self.user_embedding.weight, torch.cat([self.item_embedding.weight, content], dim=1)

    def batch_forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``forward()`` with the content half projected for the batch's items only (other rows 0).

        One step then costs O(B · Σ_m d_m · d) for the projections, not O(I · Σ_m d_m · d).
        """
        items = torch.cat([batch.pos_items, batch.neg_items]).unique()
        content = sum(projection(x[items]) for projection, (_, x) in zip(self.projections, self.features.items()))
        content = content.new_zeros(self.item_embedding.num_embeddings, content.shape[1]).index_copy(0, items, content)
        return self.user_embedding.weight, torch.cat([self.item_embedding.weight, content], dim=1)

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """reg_weight · ½ Σ‖e‖² / B over the batch's user and full (ID ‖ content) item vectors (as MMRec)."""
        return self.batch_l2(batch, user_emb, item_emb)


def build(dataset, config: VBPRConfig) -> VBPR:
    """VBPR over every modality of ``dataset`` (its entry needs item features)."""
    return VBPR(dataset.n_users, dataset.n_items, feature_tensors(dataset), config.embedding_size,
                config.reg_weight)
