"""Item–item kNN graphs from feature matrices, built in row chunks (never an items × items matrix).

Cosine similarity of raw features, the top-k neighbours of every row (the
item itself included or not), as a sparse matrix; cached on disk under the
data home, keyed on the dataset fingerprint, the modality and every
parameter.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from ..io import data_home, save_npz

DEFAULT_CHUNK_ROWS = 2048


def _normalized_rows(features: np.ndarray, start: int, stop: int) -> torch.Tensor:
    block = torch.from_numpy(np.array(features[start:stop], dtype=np.float32))  # a writable copy
    return torch.nn.functional.normalize(block, dim=1)


def knn_graph(features: np.ndarray, k: int, *, include_self: bool = True,
              chunk_rows: int = DEFAULT_CHUNK_ROWS) -> sp.csr_matrix:
    """Binary kNN adjacency by cosine similarity: float32 CSR [I, I] with k entries per row.

    features: [I, d] (may be a memory map; read in row chunks).
    include_self: the item counts as its own nearest neighbour (FREEDOM,
        LATTICE); otherwise it is excluded before the top-k.
    Peak memory is O(chunk_rows · I + I · d), never O(I²).
    """
    n = features.shape[0]
    k = min(k, n if include_self else n - 1)
    normalized = torch.cat([_normalized_rows(features, s, s + chunk_rows) for s in range(0, n, chunk_rows)])
    columns = []
    for start in range(0, n, chunk_rows):
        sims = normalized[start:start + chunk_rows] @ normalized.T
        rows = torch.arange(sims.shape[0])
        if include_self:
            sims[rows, rows + start] = torch.inf  # the item itself always ranks first
        else:
            sims[rows, rows + start] = -torch.inf
        columns.append(torch.topk(sims, k, dim=1).indices.numpy())
    cols = np.concatenate(columns).reshape(-1)
    rows = np.repeat(np.arange(n), k)
    return sp.csr_matrix((np.ones(cols.size, dtype=np.float32), (rows, cols)), shape=(n, n))


def row_normalize(matrix: sp.spmatrix) -> sp.csr_matrix:
    """D^-1 M with D the row sums; zero rows stay zero."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    degree = np.asarray(m.sum(axis=1)).ravel()
    inv = np.zeros_like(degree)
    inv[degree > 0] = 1.0 / degree[degree > 0]
    return (sp.diags(inv) @ m).tocsr()


def cached_knn_graph(fingerprint: str, modality: str, features: np.ndarray, k: int, *,
                     include_self: bool = True, cache_dir: Path | None = None) -> sp.csr_matrix:
    """``knn_graph`` with an on-disk cache keyed on (fingerprint, modality, k, include_self)."""
    params = {"fingerprint": fingerprint, "modality": modality, "k": k, "include_self": include_self,
              "shape": list(features.shape), "version": 1}
    key = hashlib.blake2b(json.dumps(params, sort_keys=True).encode(), digest_size=8).hexdigest()
    path = (cache_dir or data_home() / "cache" / "graphs") / f"knn-{modality}-{key}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    graph = knn_graph(features, k, include_self=include_self)
    save_npz(path, data=graph.data, indices=graph.indices, indptr=graph.indptr, shape=np.array(graph.shape))
    return graph
