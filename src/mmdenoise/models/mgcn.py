"""MGCN (Yu et al., "Multi-View Graph Convolutional Network for Multimedia Recommendation", MM'23).

Paper §3, generalised from (image, text) to any number M of modalities (parts named as in the
paper; equation numbers omitted: the paper is not in ``shared/papers`` to check them against):

- Behavior-guided purifier: modality m's raw features are projected,
  e^m_i = W_m x^m_i + b_m, and used to gate the item's ID embedding:
  ē^m_i = e^id_i ⊙ σ(G_m e^m_i + g_m), so only behaviour-relevant content passes.
- Multi-view encoder, user–item view: LightGCN on the user–item graph (mean over layers
  0..n_ui_layers) → the behaviour ("content") embeddings ē^id [U+I, d].
- Multi-view encoder, item–item view: per modality, the frozen kNN graph (k = 10, raw
  feature cosine, self included, D^-1/2 S D^-1/2) propagates ē^m_i
  ``n_layers`` times; user views aggregate their items' views over the
  user–item block of the symmetric-normalised adjacency,
  ē^m_u = Σ_{i∈N_u} ē^m_i / √(|N_u||N_i|) (``user_aggregation="mean"``: 1/|N_u|).
- Behavior-aware fuser: attention α_m = softmax_m qᵀ tanh(W ē^m + b)
  (shared query, one weight per node and modality); common part
  ē^c = Σ_m α_m ē^m; specific parts ē^m − ē^c, each gated by the node's
  preference σ(P_m ē^id + p_m); side view ē^s = (Σ_m pref_m ⊙ (ē^m − ē^c) + ē^c) / (M + 1).
  Final embedding e = ē^id + ē^s; score = dot product.
- Self-supervised auxiliary task: InfoNCE (τ = 0.2, in-batch negatives) between
  the side and behaviour views of the batch's positive items and of its
  users, weighted by cl_weight → ``extra_loss``; BPR + reg_weight · batch L2
  of the final embeddings (optimisation).

Raw features are fixed data, as in every backbone here (the authors' code also fine-tunes them);
no torch_geometric / torch_scatter: plain sparse products via ``SparseOperator``.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import OneOf, Range, setting
from ..errors import ConfigError
from ..graphs import (SparseOperator, bipartite_adjacency, cached_knn_graph, normalized_adjacency, row_normalize,
                      symmetric_normalize, to_torch_csr)
from .base import Backbone, Batch, id_embeddings
from .features import FeatureLinear, ModalityFeatures, feature_tensors
from .lightgcn import propagate


@dataclass
class MGCNConfig:
    """Defaults from MMRec's MGCN.yaml (ported with the authors' code; lists are its search grid):

    embedding_size 64; n_ui_layers 2 (user–item LightGCN); n_layers 1 (item–item
    propagation); knn_k 10; reg_weight 1e-4; cl_weight 0.01 (grid [0.001, 0.01, 0.1]);
    temperature 0.2 (fixed in the authors' code); user_aggregation "symmetric"
    (the authors' code) or "mean" (row-normalised interaction matrix).
    """

    embedding_size: int = setting(64, Range(min=1))
    n_ui_layers: int = setting(2, Range(min=0))
    n_layers: int = setting(1, Range(min=0))
    knn_k: int = setting(10, Range(min=1))
    reg_weight: float = setting(1e-4, Range(min=0))
    cl_weight: float = setting(0.01, Range(min=0))
    temperature: float = setting(0.2, Range(above=0))
    user_aggregation: str = setting("symmetric", OneOf("symmetric", "mean"))


def info_nce(view: torch.Tensor, other: torch.Tensor, temperature: float,
             counts: torch.Tensor | None = None) -> torch.Tensor:
    """In-batch InfoNCE: mean over rows b of −log( exp(cos(v_b, o_b)/τ) / Σ_c exp(cos(v_b, o_c)/τ) ).

    view, other: [N, d], row n of both belonging to one node. counts: int [N], how many rows of the
    batch node n stands for (None: 1 each). With counts the value is exactly the InfoNCE of the batch
    with node n's rows repeated counts[n] times (as negatives too): Σ_c over the batch's rows is
    Σ_n counts[n] · exp(...), i.e. a log-count offset inside the log-sum-exp, and the mean over rows
    weights node n by counts[n]. An [N, N] product then replaces the [B, B] one: a batch of 2,048
    positives holds ~1,200 distinct ml-100k items and ~850 distinct users.
    """
    logits = F.normalize(view, dim=1) @ (F.normalize(other, dim=1) / temperature).T  # τ on [N, d], not [N, N]
    if counts is None:
        return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()
    weight = counts.to(logits.dtype)
    per_node = torch.logsumexp(logits + weight.log(), dim=1) - logits.diagonal()
    return (weight * per_node).sum() / weight.sum()


class MGCN(Backbone):
    """MGCN over fixed graphs and item features.

    adjacency: normalised user–item graph, sparse CSR [(U+I), (U+I)] (``graphs.normalized_adjacency``).
    user_item: user ← item aggregation, sparse CSR [U, I].
    item_graphs: one normalised kNN graph per modality, sparse CSR [I, I] (same order as ``features``).
    features: {modality: float [I, d_m]}, M ≥ 1 modalities.
    forward() -> (user_emb [U, d], item_emb [I, d]) = behaviour view + side view.
    """

    def __init__(self, n_users: int, n_items: int, adjacency: torch.Tensor, user_item: torch.Tensor,
                 item_graphs: list[torch.Tensor], features: dict[str, torch.Tensor], embedding_size: int = 64,
                 n_ui_layers: int = 2, n_layers: int = 1, reg_weight: float = 1e-4, cl_weight: float = 0.01,
                 temperature: float = 0.2):
        super().__init__()
        if len(item_graphs) != len(features):
            raise ValueError(f"one item graph per modality needed: {len(item_graphs)} graphs, "
                             f"{len(features)} modalities")
        self.n_users, self.n_items = n_users, n_items
        self.n_ui_layers, self.n_layers = n_ui_layers, n_layers
        self.reg_weight, self.cl_weight, self.temperature = reg_weight, cl_weight, temperature
        d = embedding_size
        self.user_embedding, self.item_embedding = id_embeddings(n_users, n_items, d)
        self.graph = SparseOperator(adjacency, symmetric=True)
        self.user_item = SparseOperator(user_item, symmetric=False)
        self.item_graphs = nn.ModuleList(SparseOperator(g, symmetric=False) for g in item_graphs)
        self.features = ModalityFeatures(features)
        self.projections = nn.ModuleList(FeatureLinear(dim, d) for dim in self.features.dims())
        self.purifiers = nn.ModuleList(nn.Linear(d, d) for _ in features)
        self.preferences = nn.ModuleList(nn.Linear(d, d) for _ in features)
        self.query = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1, bias=False))
        # the last forward()'s outputs (weak references) and its behaviour view: extra_loss reuses the view
        # only when it is handed exactly those outputs, and consumes it (see extra_loss)
        self._last_forward: tuple[weakref.ref, weakref.ref, torch.Tensor] | None = None

    def purified_items(self) -> list[torch.Tensor]:
        """ē^m_i = e^id_i ⊙ σ(G_m (W_m x^m_i + b_m) + g_m) per modality: [I, d] each."""
        ids = self.item_embedding.weight
        gates = self.features.map(nn.Sequential(projection, purifier)
                                  for projection, purifier in zip(self.projections, self.purifiers))
        return [ids * torch.sigmoid(gate) for gate in gates.values()]

    def item_views(self) -> list[torch.Tensor]:
        """Purified item views propagated ``n_layers`` times on their kNN graph: [I, d] each."""
        views = []
        for view, graph in zip(self.purified_items(), self.item_graphs):
            for _ in range(self.n_layers):
                view = graph(view)
            views.append(view)
        return views

    def modality_item_emb(self) -> dict[str, torch.Tensor]:
        """{modality: item–item view ē^m_i [I, d]}."""
        return dict(zip(self.features.names, self.item_views()))

    def fuse(self, views: torch.Tensor, behaviour: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Behavior-aware fuser: views [N, M, d], behaviour ē^id [N, d] → (side ē^s [N, d], α [N, M]).

        α sums to 1 over the M modalities of each node.
        """
        weights = torch.softmax(self.query(views).squeeze(-1), dim=-1)
        common = (weights.unsqueeze(-1) * views).sum(1)
        preference = torch.stack([torch.sigmoid(gate(behaviour)) for gate in self.preferences], 1)
        specific = (preference * (views - common.unsqueeze(1))).sum(1)
        return (specific + common) / (views.shape[1] + 1), weights

    def behaviour(self) -> torch.Tensor:
        """User–item view ē^id: LightGCN layer mean of the ID embeddings, [U+I, d] (users first)."""
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        return propagate(self.graph, ego, self.n_ui_layers)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        behaviour = self.behaviour()
        items = torch.stack(self.item_views(), 1)  # [I, M, d]
        users = self.user_item(items.flatten(1)).view(self.n_users, *items.shape[1:])  # all M in one product
        side, _ = self.fuse(torch.cat([users, items]), behaviour)
        out = behaviour + side
        user_emb, item_emb = out[: self.n_users], out[self.n_users:]
        self._last_forward = (weakref.ref(user_emb), weakref.ref(item_emb), behaviour) if self.training else None
        return user_emb, item_emb

    def _behaviour_of(self, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """The behaviour view ē^id [U+I, d] under which ``user_emb``, ``item_emb`` were computed: the one
        the last forward() kept when these are exactly its outputs (the same tensor objects), else
        propagated afresh. Either way the same value and graph; the kept view is released here."""
        last, self._last_forward = self._last_forward, None
        if last is not None and last[0]() is user_emb and last[1]() is item_emb:
            return last[2]
        return self.behaviour()

    def extra_loss(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """cl_weight · [InfoNCE(ē^s_i, ē^id_i) over positives + InfoNCE(ē^s_u, ē^id_u) over users].

        ``user_emb``, ``item_emb`` must be this model's ``forward()``: the side view
        is recovered as (final − behaviour), the same value and gradient as the side
        view itself. The behaviour view is the one that forward() computed when these
        are its outputs as returned (``_behaviour_of``; a training step, 20–28% of an
        ml-100k epoch saved), else the LightGCN view is propagated again. Each distinct
        user and item of the batch is computed once, weighted by its number of rows
        (``info_nce``'s counts): the batch's InfoNCE exactly, on an [N, N] product.
        """
        if self.cl_weight == 0:
            self._last_forward = None  # nothing reads the kept view
            return user_emb.new_zeros(())
        behaviour = self._behaviour_of(user_emb, item_emb)
        users, n_user_rows = torch.unique(batch.users, return_counts=True)  # each distinct node once
        items, n_item_rows = torch.unique(batch.pos_items, return_counts=True)
        behaviour_u, behaviour_i = behaviour[users], behaviour[self.n_users + items]
        side_u = user_emb[users] - behaviour_u
        side_i = item_emb[items] - behaviour_i
        return self.cl_weight * (info_nce(side_i, behaviour_i, self.temperature, n_item_rows)
                                 + info_nce(side_u, behaviour_u, self.temperature, n_user_rows))

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """reg_weight · ½ Σ‖e‖² / B over the batch's final user, positive and negative embeddings."""
        return self.batch_l2(batch, user_emb, item_emb)


def user_item_matrix(dataset, aggregation: str) -> torch.Tensor:
    """User ← item aggregation over training interactions, sparse CSR [U, I].

    "symmetric": the user–item block of D^-1/2 A D^-1/2 (as ``normalized_adjacency``);
    "mean": D_u^-1 R (each user averages its items).
    """
    train = dataset.train
    if aggregation == "symmetric":
        full = symmetric_normalize(bipartite_adjacency(dataset.n_users, dataset.n_items, train.users, train.items))
        block = full[: dataset.n_users, dataset.n_users:]
    elif aggregation == "mean":
        block = row_normalize(dataset.interaction_matrix("train"))
    else:
        raise ConfigError(f"user_aggregation must be 'symmetric' or 'mean', got {aggregation!r}")
    return to_torch_csr(block)


def build(dataset, config: MGCNConfig) -> MGCN:
    """MGCN on ``dataset``: shared user–item graph, disk-cached kNN graph per modality, all modalities."""
    user_item = user_item_matrix(dataset, config.user_aggregation)
    item_graphs = [to_torch_csr(symmetric_normalize(cached_knn_graph(dataset.fingerprint, m, x, config.knn_k)))
                   for m, x in dataset.features.items()]
    return MGCN(dataset.n_users, dataset.n_items, normalized_adjacency(dataset), user_item, item_graphs,
                feature_tensors(dataset), config.embedding_size, config.n_ui_layers, config.n_layers,
                config.reg_weight, config.cl_weight, config.temperature)
