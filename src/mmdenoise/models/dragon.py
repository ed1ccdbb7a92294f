"""DRAGON (Zhou et al., "Enhancing Dyadic Relations with Homogeneous Graphs for Multimodal
Recommendation", ECAI'23): dual representations from a heterogeneous user–item graph per modality
and two homogeneous graphs (item–item, user–user).

Section references are to the paper's §3 (Methodology).
- Heterogeneous graph, per modality m (§3.1): item input x^m_i = W2 LeakyReLU(W1 f^m_i) (a two-layer
  MLP of the raw features f^m, hidden width 4d), user input p^m_u a free "modality preference"
  embedding; the stacked [p^m; x^m] rows are L2-normalised and propagated L = 2 layers on the
  symmetric-normalised user–item graph D^-1/2 A D^-1/2; the readout is the layer sum
  h^m = Σ_{l=0..L} Â^l [p^m; x^m].
- Fusion (§3.2, attentive concatenation): users h_u = ‖_m α_um h^m_u with per-user modality
  weights α_u = softmax(a_u) (learnt); items h_i = ‖_m h^m_i. Embeddings are M·d wide.
- Item–item graph (§3.1, homogeneous): FREEDOM's frozen kNN graph per modality (raw-feature
  cosine, k = 10, self included, D^-1/2 S D^-1/2), mixed with fixed weights (0.1 image / 0.9
  text, generalised by ``freedom.default_mix``); item = h_i + S^{L_mm} h_i (L_mm = 1).
- User–user graph (§3.1, homogeneous): each user's top-40 co-users by number of co-interacted
  items, weighted by a softmax of the counts over the kept co-users; user = h_u + Σ_v w_uv h_v.
- Loss (§3.3): BPR on the dot product + reg_weight · mean of the batch users' squared preference
  embeddings (MMRec's regulariser; reg_weight from MMRec's grid {1e-1 .. 1e-5}).

Differences from the released code: its random padding of users with fewer than 40 co-users
(duplicates change the softmax) is not reproduced — such users use the co-users they have.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Range, setting
from ..graphs import SparseOperator, cached_cooccurrence_graph, normalized_adjacency, softmax_rows, to_torch_csr
from .base import Backbone, Batch
from .features import FeatureLinear, ModalityFeatures, feature_tensors
from .freedom import MODALITY_MIX, default_mix, mixed_item_graph
from .lightgcn import propagate


@dataclass
class DRAGONConfig:
    """embedding_size: d per modality; n_layers: user–item layers; n_mm_layers: item–item layers;
    knn_k: item kNN size; user_k: co-users kept per user; modality_mix: item-graph weights (empty: default)."""

    embedding_size: int = setting(64, Range(min=1))
    n_layers: int = setting(2, Range(min=0))
    n_mm_layers: int = setting(1, Range(min=0))
    knn_k: int = setting(10, Range(min=1))
    user_k: int = setting(40, Range(min=1))
    reg_weight: float = setting(1e-3, Range(min=0))
    modality_mix: dict = setting(factory=dict, allowed=MODALITY_MIX)


class DRAGON(Backbone):
    """DRAGON over fixed graphs and features.

    adjacency: normalised user–item graph, sparse CSR [(U+I), (U+I)], symmetric.
    item_graph: mixed item kNN graph, sparse CSR [I, I]; user_graph: softmax-weighted
        co-occurrence graph, sparse CSR [U, U] (rows sum to 1 or are empty).
    features: {modality: float [I, d_m]}.
    forward() -> (user_emb [U, M·d], item_emb [I, M·d]).
    """

    def __init__(self, n_users: int, n_items: int, adjacency: torch.Tensor, item_graph: torch.Tensor,
                 user_graph: torch.Tensor, features: dict[str, torch.Tensor], embedding_size: int = 64,
                 n_layers: int = 2, n_mm_layers: int = 1, reg_weight: float = 1e-3):
        super().__init__()
        self.n_users, self.n_items, self.embedding_size = n_users, n_items, embedding_size
        self.n_layers, self.n_mm_layers, self.reg_weight = n_layers, n_mm_layers, reg_weight
        self.features = ModalityFeatures(features)
        self.preferences = nn.ParameterList(nn.Parameter(nn.init.xavier_normal_(torch.empty(n_users, embedding_size)))
                                            for _ in self.features.names)
        self.encoders = nn.ModuleList(nn.Sequential(FeatureLinear(dim, 4 * embedding_size), nn.LeakyReLU(),
                                                    nn.Linear(4 * embedding_size, embedding_size))
                                      for dim in self.features.dims())
        self.user_attention = nn.Parameter(torch.zeros(n_users, len(self.features)))
        self.graph = SparseOperator(adjacency, symmetric=True)
        self.item_graph = SparseOperator(item_graph, symmetric=False)
        self.user_graph = SparseOperator(user_graph, symmetric=False)

    def _modality_views(self) -> torch.Tensor:
        """h^m for every modality at once: [(U+I), M, d] (users first)."""
        inputs = [F.normalize(torch.cat([p, encoded]), dim=1)
                  for p, encoded in zip(self.preferences, self.features.map(self.encoders).values())]
        stacked = torch.cat(inputs, dim=1)  # one sparse product for all modalities: [(U+I), M·d]
        summed = propagate(self.graph, stacked, self.n_layers) * (self.n_layers + 1)  # layer sum
        return summed.view(-1, len(inputs), self.embedding_size)

    def modality_item_emb(self) -> dict[str, torch.Tensor]:
        """{modality: h^m_i [I, d]}: the blocks of the concatenated item representation."""
        views = self._modality_views()[self.n_users:]
        return {name: views[:, m] for m, name in enumerate(self.features.names)}

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        views = self._modality_views()
        weights = torch.softmax(self.user_attention, dim=1)  # α_u [U, M]
        users = (views[: self.n_users] * weights[:, :, None]).flatten(1)
        items = views[self.n_users:].flatten(1)
        h = items
        for _ in range(self.n_mm_layers):
            h = self.item_graph(h)
        return users + self.user_graph(users), items + h

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """reg_weight · Σ_m mean((p^m_u)²) over the batch's users."""
        if self.reg_weight == 0:
            return user_emb.new_zeros(())
        return self.reg_weight * sum(p[batch.users].pow(2).mean() for p in self.preferences)


def build(dataset, config: DRAGONConfig) -> DRAGON:
    """DRAGON on ``dataset``: shared user–item graph, FREEDOM's mixed kNN graph, top-k user co-occurrence graph."""
    mix = config.modality_mix or default_mix(list(dataset.features))
    item_graph = mixed_item_graph(dataset, config.knn_k, mix)
    counts = cached_cooccurrence_graph(dataset.fingerprint, dataset.train.users, dataset.train.items,
                                       dataset.n_users, dataset.n_items, config.user_k)
    return DRAGON(dataset.n_users, dataset.n_items, normalized_adjacency(dataset), to_torch_csr(item_graph),
                  to_torch_csr(softmax_rows(counts)), feature_tensors(dataset), config.embedding_size,
                  config.n_layers, config.n_mm_layers, config.reg_weight)
