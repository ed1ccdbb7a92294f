"""Normalised user–item adjacency (LightGCN's Â = D^-1/2 A D^-1/2), built once per dataset."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import scipy.sparse as sp
import torch

from ..data.dataset import Dataset
from .normalize import symmetric_normalize
from .ops import csr_tensor

#: (dataset fingerprint, kind) -> graph; least recently used first, at most _CACHE_SIZE entries
_CACHE: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
_CACHE_SIZE = 8


def to_torch_csr(matrix: sp.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a float32 torch sparse CSR tensor (same shape, int64 indices)."""
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)  # the tensor shares this memory
    m.sum_duplicates()  # also sorts the column indices of every row
    return csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64)),
                      torch.from_numpy(m.data), m.shape)


def bipartite_adjacency(n_users: int, n_items: int, users: np.ndarray, items: np.ndarray,
                        weights: np.ndarray | None = None) -> sp.csr_matrix:
    """The (U+I)×(U+I) symmetric bipartite matrix [[0, R], [Rᵀ, 0]] of the given edges.

    users, items: int [E] edge endpoints (item ids 0-based; they become nodes
    U..U+I-1); any subset of the training edges may be passed (FREEDOM's pruned
    graph). Duplicate edges are merged: weight 1 without ``weights``,
    otherwise their weights add up. float64 CSR, not normalised.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64) + n_users
    w = np.ones(users.size, dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    n = n_users + n_items
    a = sp.coo_matrix((np.r_[w, w], (np.r_[users, items], np.r_[items, users])), shape=(n, n)).tocsr()
    if weights is None:
        a.data[:] = 1.0
    return a


def normalized_adjacency(dataset: Dataset) -> torch.Tensor:
    """Â = D^-1/2 A D^-1/2 of the training interactions: sparse CSR float32 [(U+I), (U+I)].

    A = [[0, R], [Rᵀ, 0]] with R the binary user × item training matrix
    (duplicates merged); rows 0..U-1 are users, U..U+I-1 items. Zero-degree
    nodes keep zero rows and columns. Cached in-process (LRU, keyed on the
    dataset fingerprint), so every model on the same data shares one tensor:
    treat it as read-only.
    """
    key = (dataset.fingerprint, "user-item-symmetric")
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    a = bipartite_adjacency(dataset.n_users, dataset.n_items, dataset.train.users, dataset.train.items)
    graph = _CACHE[key] = to_torch_csr(symmetric_normalize(a))
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return graph


def clear_cache() -> None:
    """Forget every cached graph (frees memory; the next call rebuilds)."""
    _CACHE.clear()
