"""Normalised user–item adjacency (LightGCN's Â = D^-1/2 A D^-1/2), built once per dataset."""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from ..data.dataset import Dataset

_CACHE: dict[tuple, torch.Tensor] = {}
_CACHE_SIZE = 8


def to_torch_csr(matrix: sp.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a float32 torch sparse CSR tensor (same shape)."""
    m = sp.csr_matrix(matrix, dtype=np.float32)
    m.sort_indices()
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it is what we want
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                       torch.from_numpy(m.indices.astype(np.int64)),
                                       torch.from_numpy(m.data), size=m.shape, check_invariants=False)


def symmetric_normalize(matrix: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 M D^-1/2 with D the row sums; zero-degree rows and columns stay zero."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    degree = np.asarray(m.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    nonzero = degree > 0
    inv_sqrt[nonzero] = degree[nonzero] ** -0.5
    d = sp.diags(inv_sqrt)
    return (d @ m @ d).tocsr()


def bipartite_adjacency(n_users: int, n_items: int, users: np.ndarray, items: np.ndarray,
                        weights: np.ndarray | None = None) -> sp.csr_matrix:
    """The (U+I)×(U+I) symmetric bipartite matrix [[0, R], [Rᵀ, 0]] of the given edges (unnormalised).

    Duplicate edges are merged (weight 1 each unless ``weights`` are given).
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

    Rows 0..U-1 are users, U..U+I-1 items. Cached in-process on the dataset
    fingerprint, so every model on the same data shares one graph.
    """
    key = (dataset.fingerprint, "ui-sym")
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        a = bipartite_adjacency(dataset.n_users, dataset.n_items, dataset.train.users, dataset.train.items)
        _CACHE[key] = to_torch_csr(symmetric_normalize(a))
    return _CACHE[key]
