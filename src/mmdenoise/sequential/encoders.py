"""The shared building blocks of Demure's user encoder (paper §3.2, Eq. 1–4).

``attention_pool`` is the paper's self-attention with attention-weight
aggregation, used twice: over an item's M modality vectors (modality-wise
encoder) and over the L items of a sequence (item-wise encoder).
``ModalityEncoder`` turns item ids into modality activations i^m and item
embeddings i_t; every sequential model in this package uses it, so the
baselines differ from the base model only in how they pool a sequence.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from torch import nn

#: modality name of the optional learnt item-ID "modality"
ID_MODALITY = "id"
#: up to this many vectors, attention is computed by broadcasting instead of batched matmuls
_BROADCAST_MAX = 8


class AttentionPool(nn.Module):
    """Self-attention over N vectors with the paper's aggregation weights (Eq. 1–3).

    s_{m,n} = f(x_m)ᵀ g(x_n) / √d (Eq. 1; the 1/√d scaling of Vaswani et al. is
    our choice, the paper writes the plain product), β_{m,n} = softmax_n s,
    x̃_m = Σ_n β_{m,n} h(x_n) (Eq. 2), and the weight of vector m in the
    aggregate is its accumulated attention mass
    β_m = Σ_n exp(s_{m,n}) / Σ_{m'} Σ_n exp(s_{m',n}) (Eq. 3), computed as
    softmax_m(logsumexp_n s_{m,n}). The output is Σ_m β_m x̃_m. f, g, h are
    linear maps (W_f, W_g, W_h) shared by all positions.

    Padding (``mask`` False) takes no part: padded keys get no attention,
    padded queries get β_m = 0 exactly.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)   # f
        self.key = nn.Linear(dim, dim, bias=False)     # g
        self.value = nn.Linear(dim, dim, bias=False)   # h
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, index: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [..., N, d]; mask: bool [..., N] (True = real) or None.

        With ``index`` int64 [..., N], ``x`` is a table [D, d] and vector n of a
        row is ``x[index[..., n]]``: the linear maps then run once per table row
        instead of once per position (the same numbers; cheaper when positions
        repeat rows, as a batch of windows repeats items).

        Returns (pooled [..., d], weights β_m [..., N] summing to 1 over real
        positions). Every row needs ≥ 1 real position. The pooled vector is
        Σ_m β_m x̃_m = Σ_n (Σ_m β_m β_{m,n}) h(x_n): the enhanced vectors x̃ are
        never formed (``enhanced`` gives them).
        """
        query, key, value = self.query(x), self.key(x), self.value(x)
        if index is not None:
            query, key, value = query[index], key[index], value[index]
        beta, weights = self._attention(query, key, mask)
        mix = (weights.unsqueeze(-1) * beta).sum(-2)                                 # [..., N]
        return (mix.unsqueeze(-1) * value).sum(-2), weights

    def enhanced(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The enhanced vectors x̃_m = Σ_n β_{m,n} h(x_n) of Eq. 2: x [..., N, d] → [..., N, d]."""
        beta, _ = self._attention(self.query(x), self.key(x), mask)
        return beta @ self.value(x)

    def _attention(self, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(β_{m,n} [..., N, N] of Eq. 1, β_m [..., N] of Eq. 3) from f(x) and g(x) [..., N, d]."""
        if query.shape[-2] <= _BROADCAST_MAX:   # a handful of modalities: batched matmuls of 3×3 blocks are slower
            scores = (query.unsqueeze(-2) * key.unsqueeze(-3)).sum(-1) * self.scale
        else:
            scores = query @ key.transpose(-1, -2) * self.scale                      # [..., N, N]
        if mask is not None:
            scores = scores.masked_fill(~mask.unsqueeze(-2), -torch.inf)
        beta = torch.softmax(scores, dim=-1)                                         # Eq. 1
        row_mass = torch.logsumexp(scores, dim=-1)                                   # log Σ_n exp s_{m,n}
        if mask is not None:
            row_mass = row_mass.masked_fill(~mask, -torch.inf)
        return beta, torch.softmax(row_mass, dim=-1)                                 # Eq. 3


def standardise(features: np.ndarray) -> np.ndarray:
    """Columns scaled to zero mean and unit variance (constant columns only centred); float32.

    Modalities arrive on very different scales (unit-norm sentence embeddings,
    multi-hot genres), which a shared attention would otherwise weigh by scale.
    """
    x = np.asarray(features, dtype=np.float64)
    std = x.std(axis=0)
    return ((x - x.mean(axis=0)) / np.where(std > 1e-8, std, 1.0)).astype(np.float32)


class ModalityEncoder(nn.Module):
    """Item ids → modality activations i^m [..., M, d] → item embeddings i_t [..., d] (Eq. 1–3).

    features: modality -> float32 [n_items, d_m] (stored as non-persistent
        buffers: data, not learnt state). Each modality has its own linear map
        to the shared width d; that output is the "modality activation" i^m of
        Eq. 8. With ``id_embedding`` a learnt per-item vector joins as one more
        modality (named ``ID_MODALITY``; the paper uses content only).
    """

    def __init__(self, features: Mapping[str, torch.Tensor], dim: int, *, id_embedding: bool = False):
        super().__init__()
        if not features:
            raise ValueError("a ModalityEncoder needs at least one content modality")
        self.modalities = list(features) + ([ID_MODALITY] if id_embedding else [])
        self.n_items = next(iter(features.values())).shape[0]
        self.projections = nn.ModuleList()
        for k, (name, x) in enumerate(features.items()):
            self.register_buffer(f"features_{k}", torch.as_tensor(x, dtype=torch.float32), persistent=False)
            self.projections.append(nn.Linear(x.shape[1], dim))
        self.id_embedding = None
        if id_embedding:
            self.id_embedding = nn.Embedding(self.n_items, dim)
            nn.init.normal_(self.id_embedding.weight, std=0.1)
        self.attention = AttentionPool(dim)
        self.dim = dim

    @property
    def n_modalities(self) -> int:
        return len(self.modalities)

    def activations(self, modality_items: torch.Tensor) -> torch.Tensor:
        """Modality activations: modality_items int64 [..., M] (the item whose modality m is used at
        slot m; PAD entries must be replaced by any valid id first) → float [..., M, d].

        Each distinct item is projected once and gathered (a batch repeats items
        many times); the result is still one differentiable tensor per slot."""
        distinct, inverse = torch.unique(modality_items, return_inverse=True)
        table = [proj(getattr(self, f"features_{k}")[distinct]) for k, proj in enumerate(self.projections)]
        if self.id_embedding is not None:
            table.append(self.id_embedding(distinct))
        table = torch.stack(table, dim=1)                                            # [D, M, d]
        return table[inverse, torch.arange(self.n_modalities, device=table.device)]

    def aggregate(self, activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 1–3 over the M modalities: [..., M, d] → (item embedding [..., d], β_m [..., M])."""
        return self.attention(activations)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """Item embeddings of ``items`` int64 [...] → [..., d]."""
        modality_items = items.unsqueeze(-1).expand(*items.shape, self.n_modalities)
        return self.aggregate(self.activations(modality_items))[0]

    @torch.no_grad()
    def all_items(self, n_items: int, chunk: int = 8192) -> torch.Tensor:
        """Embeddings of every item, [n_items, d], in chunks (no gradient)."""
        device = self.attention.query.weight.device
        parts = [self(torch.arange(s, min(s + chunk, n_items), device=device)) for s in range(0, n_items, chunk)]
        return torch.cat(parts)


class FeedForward(nn.Module):
    """The user encoder's FFN (Eq. 4): u = x + W₂ ReLU(W₁ x + b₁) + b₂, hidden width 2d.

    The paper says only "FFN"; the residual form (as in a Transformer block)
    keeps the pooled sequence reachable at initialisation.
    """

    def __init__(self, dim: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or 2 * dim
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)
