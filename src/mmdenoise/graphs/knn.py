"""Item–item kNN graphs from feature matrices, built in row chunks (never an items × items matrix).

Cosine similarity of raw features, the top-k neighbours of every row (the
item itself included or not), as a sparse matrix; cached on disk
(``cache.cached_graphs``), keyed on the dataset fingerprint, the modality
and every parameter. Two backends: ``torch`` (exact, chunked matrix
products; the default) and ``faiss`` (inner product on L2-normalised rows,
exact with IndexFlatIP or approximate with HNSW; for very large catalogues,
``pip install faiss-cpu``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from ..errors import ConfigError
from .cache import cached_graphs
from .normalize import unit_rows

DEFAULT_CHUNK_ROWS = 2048
BACKENDS = ("torch", "faiss")
FAISS_INDEXES = ("flat", "hnsw")


@torch.no_grad()
def topk_cosine(normalized: torch.Tensor, k: int, *, include_self: bool = True,
                chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k neighbours of every row by inner product of L2-normalised rows (cosine).

    normalized: [I, d] rows of unit norm (or zero), on any device.
    Returns (values [I, k], indices int64 [I, k]) on the same device, best
    first, without gradient. With ``include_self`` the row itself is always
    in position 0 (its value is its own cosine, 1 for a non-zero row);
    otherwise it is excluded. Peak memory O(chunk_rows · I).
    """
    n = normalized.shape[0]
    values, indices = [], []
    for start in range(0, n, chunk_rows):
        sims = normalized[start:start + chunk_rows] @ normalized.T
        rows = torch.arange(sims.shape[0], device=sims.device)
        own = sims[rows, rows + start].clone()
        sims[rows, rows + start] = torch.inf if include_self else -torch.inf
        top = torch.topk(sims, k, dim=1)
        if include_self:
            top.values[:, 0] = own  # the item itself ranks first
        values.append(top.values)
        indices.append(top.indices)
    return torch.cat(values), torch.cat(indices)


def _faiss_topk(normalized: np.ndarray, k: int, include_self: bool, index: str,
                chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        import faiss
    except ImportError:
        raise ConfigError("the faiss kNN backend needs faiss: pip install faiss-cpu") from None
    n, d = normalized.shape
    if index == "flat":
        searcher = faiss.IndexFlatIP(d)
    else:
        searcher = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    searcher.add(normalized)
    values, indices = [], []
    for start in range(0, n, chunk_rows):
        block = normalized[start:start + chunk_rows]
        sims, ids = searcher.search(block, min(k + 1, n))
        own = ids == np.arange(start, start + block.shape[0])[:, None]
        # the row itself (wherever faiss ranked it, if at all) and missing results (-1) go last
        order = np.argsort(own | (ids < 0), axis=1, kind="stable")
        sims, ids = np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)
        if include_self:
            self_ids = np.arange(start, start + block.shape[0])[:, None]
            ids = np.concatenate([self_ids, ids[:, :k - 1]], axis=1)
            sims = np.concatenate([(block * block).sum(1, keepdims=True), sims[:, :k - 1]], axis=1)
        values.append(sims[:, :k])
        indices.append(ids[:, :k])
    return np.concatenate(values), np.concatenate(indices)


def knn_graph(features: np.ndarray, k: int, *, include_self: bool = True, weighted: bool = False,
              backend: str = "torch", faiss_index: str = "flat",
              chunk_rows: int = DEFAULT_CHUNK_ROWS) -> sp.csr_matrix:
    """kNN adjacency by cosine similarity: float32 CSR [I, I] with k entries per row.

    features: [I, d] (may be a memory map; read once, into one float32 copy).
    include_self: the item counts as its own nearest neighbour (FREEDOM,
        LATTICE); otherwise it is excluded before the top-k.
    weighted: entries are the cosine similarities (LATTICE's Eq. 2) instead of 1.
    backend: ``torch`` (exact) or ``faiss`` (``faiss_index`` ``flat``: exact
        inner product, same graph up to ties; ``hnsw``: approximate).
    Peak memory is O(chunk_rows · I + I · d), never O(I²).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown kNN backend {backend!r}; backends: {', '.join(BACKENDS)}")
    if faiss_index not in FAISS_INDEXES:
        raise ConfigError(f"unknown faiss index {faiss_index!r}; indexes: {', '.join(FAISS_INDEXES)}")
    n = features.shape[0]
    k = min(k, n if include_self else n - 1)
    normalized = unit_rows(features)
    if backend == "torch":
        values, indices = (t.numpy() for t in topk_cosine(normalized, k, include_self=include_self,
                                                          chunk_rows=chunk_rows))
    else:
        values, indices = _faiss_topk(normalized.numpy(), k, include_self, faiss_index, chunk_rows)
    data = values.reshape(-1).astype(np.float32) if weighted else np.ones(n * k, dtype=np.float32)
    return sp.csr_matrix((data, (np.repeat(np.arange(n), k), indices.reshape(-1))), shape=(n, n))


def cached_knn_graph(fingerprint: str, modality: str, features: np.ndarray, k: int, *,
                     include_self: bool = True, weighted: bool = False, backend: str = "torch",
                     faiss_index: str = "flat", cache_dir: Path | None = None) -> sp.csr_matrix:
    """``knn_graph`` with an on-disk cache keyed on the fingerprint, the modality and every parameter."""
    params = {"modality": modality, "k": k, "include_self": include_self, "weighted": weighted,
              "backend": backend, "faiss_index": faiss_index, "shape": list(features.shape)}
    graphs = cached_graphs(f"knn-{modality}", fingerprint, params, version=2, cache_dir=cache_dir,
                           build=lambda: {modality: knn_graph(features, k, include_self=include_self,
                                                              weighted=weighted, backend=backend,
                                                              faiss_index=faiss_index)})
    return graphs[modality]
