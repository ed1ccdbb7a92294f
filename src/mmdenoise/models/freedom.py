"""FREEDOM (Zhou & Shen, MM'23): a frozen item–item graph and a degree-sensitively pruned user–item graph.

- Item–item: per modality, the kNN graph (k = 10, self included) of raw-feature
  cosine similarity, D^-1/2 A D^-1/2-normalised; the modality graphs are mixed
  with fixed weights (0.1 image / 0.9 text in the paper, generalised here) and
  never updated. Item ID embeddings are propagated ``n_mm_layers`` on it → h.
- User–item: LightGCN (mean over layers 0..L) on a graph whose edges are
  re-drawn every epoch, keeping a (1 − dropout) share with probability
  ∝ 1/√(d_u d_i); the full graph is used for evaluation.
- Item = LightGCN item + h; user = LightGCN user.
- Loss: BPR + modality_weight · Σ_m BPR(u, E_m x^m_i, E_m x^m_j), with E_m a
  linear map of modality m's raw features (the paper's L_v + L_t terms).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..config import Check, Range, setting
from ..errors import ConfigError
from ..graphs import SparseOperator, cached_knn_graph, normalized_adjacency, symmetric_normalize, to_torch_csr
from ..graphs.pruning import edge_keep_weights, pruned_adjacency
from ..losses import bpr_loss
from .base import Backbone, Batch, id_embeddings
from .features import FeatureLinear, ModalityFeatures, feature_tensors
from .lightgcn import propagate


#: modality_mix (FREEDOM, DRAGON): weights of the modality kNN graphs; empty = ``default_mix``
MODALITY_MIX = Check(lambda mix: all(isinstance(k, str) and isinstance(w, (int, float)) and not isinstance(w, bool)
                                     and 0 <= w < float("inf") for k, w in mix.items()),
                     "a mapping of modality name to a weight ≥ 0, e.g. {text: 0.9, image: 0.1}")


@dataclass
class FREEDOMConfig:
    """embedding_size: d; n_ui_layers: LightGCN layers on the pruned user–item graph; n_mm_layers: layers
    on the frozen item–item graph; knn_k: k of each modality's kNN graph (10); dropout: the share of
    user–item edges dropped each epoch (degree-sensitive, 0.8); modality_weight: weight of the
    per-modality BPR terms (L_v + L_t); reg_weight: L2 weight; modality_mix: weights of the modality
    graphs (empty: text 0.9 and the others 0.1 shared, else equal; the paper's 0.1 image / 0.9 text)."""

    embedding_size: int = setting(64, Range(min=1))
    n_ui_layers: int = setting(2, Range(min=0))
    n_mm_layers: int = setting(1, Range(min=0))
    knn_k: int = setting(10, Range(min=1))
    dropout: float = setting(0.8, Range(min=0, below=1))
    modality_weight: float = setting(1e-4, Range(min=0))
    reg_weight: float = setting(0.0, Range(min=0))
    modality_mix: dict = setting(factory=dict, allowed=MODALITY_MIX)


def default_mix(modalities: list[str]) -> dict[str, float]:
    """Mixing weights of the modality graphs: the paper's 0.1 image / 0.9 text, generalised.

    With a ``text`` modality and others, text gets 0.9 and the others share
    0.1 equally (ml-100k: text 0.9, genre 0.1); otherwise all are equal.
    """
    if "text" in modalities and len(modalities) > 1:
        others = [m for m in modalities if m != "text"]
        return {"text": 0.9, **{m: 0.1 / len(others) for m in others}}
    return {m: 1.0 / len(modalities) for m in modalities}


class FREEDOM(Backbone):
    """FREEDOM over fixed graphs and features.

    users, items: int64 [E] training edges (pruned each epoch).
    adjacency: the full normalised user–item graph, sparse CSR [(U+I), (U+I)]
        (``graphs.normalized_adjacency``), used for evaluation.
    item_graph: the mixed, normalised item–item graph, sparse CSR [I, I] (not
        symmetric: kNN is directed). features: {modality: float [I, d_m]}.
    forward() -> (user_emb [U, d], item_emb [I, d]).
    """

    def __init__(self, n_users: int, n_items: int, users: torch.Tensor, items: torch.Tensor,
                 adjacency: torch.Tensor, item_graph: torch.Tensor, features: dict[str, torch.Tensor],
                 embedding_size: int = 64, n_ui_layers: int = 2, n_mm_layers: int = 1, dropout: float = 0.8,
                 modality_weight: float = 1e-4, reg_weight: float = 0.0):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.n_ui_layers, self.n_mm_layers, self.dropout = n_ui_layers, n_mm_layers, dropout
        self.modality_weight, self.reg_weight = modality_weight, reg_weight
        self.user_embedding, self.item_embedding = id_embeddings(n_users, n_items, embedding_size)
        self.features = ModalityFeatures(features)
        # bias-free: a bias adds the same u·b to s_ui and s_uj and cancels in every BPR term
        self.projections = nn.ModuleList(FeatureLinear(dim, embedding_size, bias=False) for dim in self.features.dims())
        self.register_buffer("edge_users", users, persistent=False)
        self.register_buffer("edge_items", items, persistent=False)
        self.item_graph = SparseOperator(item_graph, symmetric=False)
        self.full_graph = SparseOperator(adjacency, symmetric=True)
        self.train_graph = self.full_graph
        self.register_buffer("edge_weight", edge_keep_weights(users, items, n_users, n_items), persistent=False)

    def epoch_start(self, epoch: int) -> None:
        """Degree-sensitive edge pruning: keep ⌊(1 − dropout)·|E|⌋ edges drawn ∝ 1/√(d_u d_i)."""
        if self.dropout <= 0:
            return
        graph = pruned_adjacency(self.n_users, self.n_items, self.edge_users, self.edge_items, self.edge_weight,
                                 1.0 - self.dropout)
        like = self.full_graph.m_values  # the pruned graph follows the model's device and dtype
        self.train_graph = SparseOperator(graph, symmetric=True).to(like.device, like.dtype)

    def modality_item_emb(self) -> dict[str, torch.Tensor]:
        """{modality: E_m x^m [I, d]}."""
        return self.features.map(self.projections)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.item_embedding.weight
        for _ in range(self.n_mm_layers):
            h = self.item_graph(h)
        graph = self.train_graph if self.training else self.full_graph
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = propagate(graph, ego, self.n_ui_layers)
        return out[: self.n_users], out[self.n_users:] + h

    def extra_loss(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        if self.modality_weight == 0:
            return user_emb.new_zeros(())
        u = user_emb[batch.users]
        total = user_emb.new_zeros(())
        for projection, (_, x) in zip(self.projections, self.features.items()):
            # only the batch's rows: projecting all I items (4096-d images) per batch dominated the epoch
            pos, neg = projection(x[batch.pos_items]), projection(x[batch.neg_items])
            total = total + bpr_loss((u * pos).sum(-1), (u * neg).sum(-1))
        return self.modality_weight * total

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        return self.batch_l2(batch, self.user_embedding.weight, self.item_embedding.weight)


def mixed_item_graph(dataset, k: int, mix: dict[str, float]) -> sp.csr_matrix:
    """Σ_m w_m · D^-1/2 kNN_m D^-1/2 over the dataset's modalities (sparse [I, I])."""
    unknown = sorted(set(mix) - set(dataset.features))
    if unknown:
        raise ConfigError(f"modality_mix names unknown modalities {unknown}; modalities: {sorted(dataset.features)}")
    graph = sp.csr_matrix((dataset.n_items, dataset.n_items), dtype=np.float64)
    for modality, weight in mix.items():
        knn = cached_knn_graph(dataset.fingerprint, modality, dataset.features[modality], k)
        graph = graph + weight * symmetric_normalize(knn)
    return graph.tocsr()


def build(dataset, config: FREEDOMConfig) -> FREEDOM:
    """FREEDOM on ``dataset``: kNN graphs (disk-cached), the shared user–item graph, all modalities."""
    mix = config.modality_mix or default_mix(list(dataset.features))
    graph = mixed_item_graph(dataset, config.knn_k, mix)
    return FREEDOM(dataset.n_users, dataset.n_items, torch.from_numpy(dataset.train.users),
                   torch.from_numpy(dataset.train.items), normalized_adjacency(dataset), to_torch_csr(graph),
                   feature_tensors(dataset), config.embedding_size, config.n_ui_layers, config.n_mm_layers,
                   config.dropout, config.modality_weight, config.reg_weight)
