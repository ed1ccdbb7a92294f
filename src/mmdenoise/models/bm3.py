"""BM3 (Zhou et al., "Bootstrap Latent Representations for Multi-modal Recommendation", WWW'23).

A negative-free, self-supervised multi-modal recommender (paper §3 and Fig. 1; parts named as
there, equation numbers omitted: the paper is not in ``shared/papers`` to check them against):

- Multi-modal latent space convertor: item modality m's raw features are mapped to
  d by a one-layer projection, h^m_i = W_m x^m_i + b_m; user/item ID
  embeddings go through LightGCN on the user–item graph (mean over layers
  0..L). Items also add their layer-0 embedding (the authors' released
  model does this), so h_i = LightGCN_i + e_i.
- Multi-modal contrastive view generator: a predictor shared by all views,
  ḣ = W_p h + b_p (online view); the target view h̃ = dropout_p(h) is
  detached (stop-gradient), so no target network and no negatives are needed.
- Multi-modal contrastive loss (MMCL), with C(a, b) = 1 − cos(a, b), batch means:
  L_rec   = C(ḣ_u, sg h̃_i) + C(ḣ_i, sg h̃_u)           (graph reconstruction) → ``rec_loss``
  L_align = Σ_m C(ḣ^m_i, sg h̃_i)                       (inter-modality)        ┐ ``extra_loss``,
  L_mask  = Σ_m C(ḣ^m_i, sg h̃^m_i)                     (intra-modality)        ┘ × cl_weight
  plus reg_weight · (‖H_u‖_F + ‖H_i‖_F) / I on the online embeddings → ``regularization``.
- Top-K recommendation: ŷ_ui = ḣ_u · ḣ_i, the dot product of the *predicted* ID
  embeddings: ``forward`` returns the online h (the targets are built from
  it), and ``score`` / ``full_scores`` apply the predictor.

Only (user, positive item) pairs are used; ``batch.neg_items`` is ignored.
Raw features are fixed data, as in every backbone here (the authors' code also fine-tunes them).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Range, setting
from ..graphs import SparseOperator, normalized_adjacency
from .base import Backbone, Batch, id_embeddings
from .features import FeatureLinear, ModalityFeatures, feature_tensors
from .lightgcn import propagate


@dataclass
class BM3Config:
    """Defaults from MMRec's BM3.yaml (written by the paper's first author; lists are its search grid):

    embedding_size: d = 64 (paper and config).
    n_layers: LightGCN layers L = 1 (config grid [1, 2]; 1 is the first value).
    dropout: target dropout ratio p = 0.5 (config grid [0.3, 0.5]).
    reg_weight: λ on the online embeddings = 0.1 (config grid [0.1, 0.01]).
    cl_weight: weight of L_align + L_mask = 2.0 (config, fixed).
    """

    embedding_size: int = setting(64, Range(min=1))
    n_layers: int = setting(1, Range(min=0))
    dropout: float = setting(0.5, Range(min=0, below=1))
    reg_weight: float = setting(0.1, Range(min=0))
    cl_weight: float = setting(2.0, Range(min=0))


def cosine_distance(online: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """C(a, b) = 1 − mean_b cos(a_b, b_b) for rows a, b [B, d]; a scalar in [0, 2]."""
    return 1.0 - F.cosine_similarity(online, target, dim=-1).mean()


class BM3(Backbone):
    """BM3 over a fixed normalised user–item graph and fixed item features.

    adjacency: sparse CSR [(U+I), (U+I)], symmetric, users first (``graphs.normalized_adjacency``).
    features: {modality: float [I, d_m]}, any number of modalities (≥ 1).
    forward() -> online (h_u [U, d], h_i [I, d]); scores use the predictor on both.
    """

    def __init__(self, n_users: int, n_items: int, adjacency: torch.Tensor, features: dict[str, torch.Tensor],
                 embedding_size: int = 64, n_layers: int = 1, dropout: float = 0.5, reg_weight: float = 0.1,
                 cl_weight: float = 2.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.dropout, self.reg_weight, self.cl_weight = dropout, reg_weight, cl_weight
        self.user_embedding, self.item_embedding = id_embeddings(n_users, n_items, embedding_size)
        self.graph = SparseOperator(adjacency, symmetric=True)
        self.features = ModalityFeatures(features)
        self.projections = nn.ModuleList(FeatureLinear(dim, embedding_size) for dim in self.features.dims())
        self.predictor = nn.Linear(embedding_size, embedding_size)
        for layer in [*self.projections, self.predictor]:
            nn.init.xavier_normal_(layer.weight)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Online embeddings: (h_u [U, d], h_i [I, d]) with h_i = LightGCN_i + e_i."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = propagate(self.graph, ego, self.n_layers)
        return out[: self.n_users], out[self.n_users:] + self.item_embedding.weight

    def pair_scores(self, user_rows: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        """ḣ_u · ḣ_i for row pairs: [B]."""
        return (self.predictor(user_rows) * self.predictor(item_rows)).sum(-1)

    def full_scores(self, user_emb: torch.Tensor, item_emb: torch.Tensor, users: torch.Tensor,
                    out: torch.Tensor | None = None) -> torch.Tensor:
        """ḣ_u · ḣ_i against every item: [B, I] (into ``out`` when given)."""
        return torch.mm(self.predictor(user_emb[users]), self.predictor(item_emb).T, out=out)

    def modality_item_emb(self) -> dict[str, torch.Tensor]:
        """{modality: h^m = W_m x^m + b_m [I, d]} (before the predictor)."""
        return self.features.map(self.projections)

    def target(self, online: torch.Tensor) -> torch.Tensor:
        """The target view h̃ = dropout_p(h), detached: same shape as ``online``.

        Dropout is part of the objective, so it applies in train and eval mode alike.
        """
        return F.dropout(online.detach(), self.dropout, training=True)

    def rec_loss(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """L_rec = C(ḣ_u, sg h̃_i) + C(ḣ_i, sg h̃_u) over the batch's (user, positive) pairs."""
        users, items = user_emb[batch.users], item_emb[batch.pos_items]
        return (cosine_distance(self.predictor(users), self.target(items))
                + cosine_distance(self.predictor(items), self.target(users)))

    def extra_loss(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """cl_weight · Σ_m [C(ḣ^m_i, sg h̃_i) + C(ḣ^m_i, sg h̃^m_i)] over the batch's positive items.

        Only the batch's rows of each modality are projected (not all items).
        """
        if self.cl_weight == 0:
            return user_emb.new_zeros(())
        items = batch.pos_items
        id_target = self.target(item_emb[items])
        total = user_emb.new_zeros(())
        for projection, (_, x) in zip(self.projections, self.features.items()):
            view = projection(x[items])
            predicted = self.predictor(view)
            total = total + cosine_distance(predicted, id_target) + cosine_distance(predicted, self.target(view))
        return self.cl_weight * total

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """reg_weight · (‖H_u‖_F + ‖H_i‖_F) / I on the online embeddings (the authors' form)."""
        if self.reg_weight == 0:
            return user_emb.new_zeros(())
        return self.reg_weight * (user_emb.norm() + item_emb.norm()) / self.n_items


def build(dataset, config: BM3Config) -> BM3:
    """BM3 on ``dataset``: the shared normalised user–item graph and all modalities."""
    return BM3(dataset.n_users, dataset.n_items, normalized_adjacency(dataset), feature_tensors(dataset),
               config.embedding_size, config.n_layers, config.dropout, config.reg_weight, config.cl_weight)
