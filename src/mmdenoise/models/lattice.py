"""LATTICE (Zhang et al., "Mining Latent Structures for Multimedia Recommendation", MM'21): learned
item–item graphs per modality, mixed with the raw-feature kNN graphs, on top of LightGCN.

- Initial graph per modality (Eq. 1–3): cosine similarity of raw features, kNN-sparsified with the
  similarity values kept (k = 10, the item itself included), S̃^m = D^-1/2 S^m D^-1/2 (D: row
  sums). Frozen, disk-cached.
- Learned graph per modality (Eq. 4–5, then the same sparsification and normalisation):
  ẽ^m_i = W_m e^m_i + b_m, cosine similarity of the ẽ^m, top-k → Â^m.
- Skip connection (Eq. 6): Ã^m = (1 − λ) Â^m + λ S̃^m, λ = 0.9 weighting the initial graph.
- Modality aggregation (Eq. 7): A = Σ_m α_m Ã^m, α = softmax(learnt logits), equal at start.
- Item graph convolution (Eq. 8): h = A^L e_id (L = 1) from the item ID embeddings.
- Combination with CF (Eq. 9): item = x_i + h_i / ‖h_i‖₂ with x the LightGCN item embedding
  (mean over 0..2 layers); user = LightGCN user. Score: dot product; loss: BPR (Eq. 10) +
  reg_weight · L2 of the batch's final embeddings (MMRec's regulariser; grid {0, 1e-5, 1e-4, 1e-3}).

Sparse throughout: the top-k neighbours of the learned graph are chosen in row chunks without
gradient, then the similarities of the kept pairs are recomputed with gradient by a gather
(O(I·k·d)); a graph with k entries per row is applied as (w[:, :, None] · h[idx]).sum(1). No
I × I matrix is ever formed. By default (``knn_refresh="epoch"``) the learned graph's neighbours
are re-selected at each epoch's start and in evaluation, while their weights (Eq. 5 on the kept
pairs) are recomputed with gradient in every batch; ``knn_refresh="forward"`` re-selects them in
every forward pass (the paper's model as written). The released code rebuilds the whole learned
graph once per epoch and detaches it for the epoch's other batches, so the default sits between
the two. Measured (docs/results/speed-ratios.md): 1.6× faster on ml-100k and 3× on synth-baby than
"forward", test Recall@20 0.3596 vs 0.3632 on ml-100k at seed 0 (within LightGCN's seed-to-seed
spread there, 0.0024–0.0041). Raw features are fixed data, not fine-tuned as in the released code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import OneOf, Range, setting
from ..errors import ConfigError
from ..graphs import (SparseOperator, cached_knn_graph, normalized_adjacency, symmetric_normalize,
                      symmetric_normalize_topk, to_torch_csr, topk_cosine)
from .base import Backbone, Batch, id_embeddings
from .features import FeatureLinear, ModalityFeatures, feature_tensors
from .lightgcn import propagate

REFRESH = ("forward", "epoch")


@dataclass
class LATTICEConfig:
    """embedding_size: d; feat_embed_dim: width of ẽ^m; n_ui_layers: LightGCN layers; n_layers: item-graph
    layers; knn_k: k; lambda_coeff: λ (weight of the initial graph); knn_refresh: forward | epoch."""

    embedding_size: int = setting(64, Range(min=1))
    feat_embed_dim: int = setting(64, Range(min=1))
    n_ui_layers: int = setting(2, Range(min=0))
    n_layers: int = setting(1, Range(min=0))
    knn_k: int = setting(10, Range(min=1))
    lambda_coeff: float = setting(0.9, Range(min=0, max=1))
    reg_weight: float = setting(1e-4, Range(min=0))
    knn_refresh: str = setting("epoch", OneOf(*REFRESH))


def _sparse_knn(z: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """D^-1/2 S D^-1/2 weights of a k-per-row graph with S_ij = z_i · z_j on the pairs ``idx`` [I, k]: [I, k]."""
    return symmetric_normalize_topk((z[:, None, :] * z[idx]).sum(-1), idx)


class LATTICE(Backbone):
    """LATTICE over a fixed user–item graph, fixed initial item graphs and fixed features.

    adjacency: normalised user–item graph, sparse CSR [(U+I), (U+I)], symmetric.
    initial_graphs: {modality: S̃^m sparse CSR [I, I]} in the order of ``features`` {modality: [I, d_m]}.
    forward() -> (user_emb [U, d], item_emb [I, d]).
    """

    def __init__(self, n_users: int, n_items: int, adjacency: torch.Tensor, initial_graphs: dict[str, torch.Tensor],
                 features: dict[str, torch.Tensor], embedding_size: int = 64, feat_embed_dim: int = 64,
                 n_ui_layers: int = 2, n_layers: int = 1, knn_k: int = 10, lambda_coeff: float = 0.9,
                 reg_weight: float = 1e-4, knn_refresh: str = "epoch"):
        super().__init__()
        if knn_refresh not in REFRESH:
            raise ConfigError(f"knn_refresh must be one of {', '.join(REFRESH)}, got {knn_refresh!r}")
        self.n_users, self.n_items, self.n_ui_layers, self.n_layers = n_users, n_items, n_ui_layers, n_layers
        self.k, self.lambda_coeff, self.knn_refresh = min(knn_k, n_items), lambda_coeff, knn_refresh
        self.reg_weight = reg_weight
        self.user_embedding, self.item_embedding = id_embeddings(n_users, n_items, embedding_size)
        self.features = ModalityFeatures(features)
        self.projections = nn.ModuleList(FeatureLinear(dim, feat_embed_dim) for dim in self.features.dims())
        self.modality_logits = nn.Parameter(torch.zeros(len(self.features)))
        self.graph = SparseOperator(adjacency, symmetric=True)
        self.initial_graphs = nn.ModuleList(SparseOperator(initial_graphs[name], symmetric=False)
                                            for name in self.features.names)
        for m in range(len(self.features)):  # neighbour lists held between refreshes ("epoch" mode)
            self.register_buffer(f"neighbours_{m}", torch.zeros(n_items, self.k, dtype=torch.long), persistent=False)
        self._stale = True

    def modality_item_emb(self) -> dict[str, torch.Tensor]:
        """{modality: ẽ^m = W_m e^m + b_m [I, feat_embed_dim]} (Eq. 4)."""
        return self.features.map(self.projections)

    def epoch_start(self, epoch: int) -> None:
        self._stale = True

    def _learned_graphs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per modality (neighbour indices [I, k], normalised weights [I, k] with gradient): Â^m (Eq. 5)."""
        refresh = self.knn_refresh == "forward" or not self.training or self._stale
        graphs = []
        for m, z in enumerate(self.modality_item_emb().values()):
            z = F.normalize(z, dim=1)
            if refresh:
                setattr(self, f"neighbours_{m}", topk_cosine(z.detach(), self.k, include_self=True)[1])
            idx = getattr(self, f"neighbours_{m}")
            graphs.append((idx, _sparse_knn(z, idx)))
        if refresh and self.training:
            self._stale = False
        return graphs

    def item_graph_embedding(self) -> torch.Tensor:
        """h = A^L e_id with A = Σ_m α_m ((1 − λ) Â^m + λ S̃^m) (Eq. 6–8): [I, d]."""
        alpha = torch.softmax(self.modality_logits, dim=0)
        learned = self._learned_graphs()
        h = self.item_embedding.weight
        for _ in range(self.n_layers):
            h = sum(a * ((1 - self.lambda_coeff) * (w[:, :, None] * h[idx]).sum(1) + self.lambda_coeff * initial(h))
                    for a, (idx, w), initial in zip(alpha, learned, self.initial_graphs))
        return h

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = propagate(self.graph, ego, self.n_ui_layers)
        return out[: self.n_users], out[self.n_users:] + F.normalize(self.item_graph_embedding(), dim=1)

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """reg_weight · ½ Σ‖e‖² / B over the batch's final user, positive and negative embeddings."""
        return self.batch_l2(batch, user_emb, item_emb)


def initial_graph(dataset, modality: str, k: int) -> torch.Tensor:
    """S̃^m (Eq. 1–3): the similarity-weighted kNN graph of raw features, D^-1/2 S D^-1/2 (sparse CSR [I, I])."""
    knn = cached_knn_graph(dataset.fingerprint, modality, dataset.features[modality], k, weighted=True)
    return to_torch_csr(symmetric_normalize(knn))


def build(dataset, config: LATTICEConfig) -> LATTICE:
    """LATTICE on ``dataset``: shared user–item graph, disk-cached initial kNN graphs, all modalities."""
    graphs = {m: initial_graph(dataset, m, config.knn_k) for m in dataset.features}
    return LATTICE(dataset.n_users, dataset.n_items, normalized_adjacency(dataset), graphs, feature_tensors(dataset),
                   config.embedding_size, config.feat_embed_dim, config.n_ui_layers, config.n_layers, config.knn_k,
                   config.lambda_coeff, config.reg_weight, config.knn_refresh)
