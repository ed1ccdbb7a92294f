"""Every normaliser of the library: feature rows to unit length, and graph rows (sum, symmetric, softmax).

Scipy graphs in, float64 CSR out, same sparsity pattern; empty rows stay
empty. ``unit_rows`` gives the float32 torch rows whose products are cosines
(kNN graphs, DA-MRS's DIIG, GUIDER's similarities); ``symmetric_normalize_topk``
is the differentiable torch form for a graph held as k neighbours per row
(LATTICE's learned graph).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

#: rows with a smaller L2 norm are treated as zero (they stay zero)
EPS = 1e-12


def unit_rows(features: np.ndarray) -> torch.Tensor:
    """L2-normalised float32 copy of ``features`` [I, d] as a torch tensor [I, d]; zero rows stay zero.

    features: any array (a memory map is read once). Normalised in place, so
    the peak is one float32 copy of the features, not two. Row products of
    the result are cosine similarities.
    """
    x = torch.from_numpy(np.array(features, dtype=np.float32))
    return x.div_(x.norm(dim=1, keepdim=True).clamp_min_(EPS))


def _degree_power(m: sp.csr_matrix, exponent: float) -> np.ndarray:
    """D^exponent [N] of the row sums D of ``m``; 0 for rows that sum to 0 or less.

    (numpy computes ``** -1.0`` as an exact reciprocal, the same bits as 1 / D.)
    """
    degree = np.asarray(m.sum(axis=1)).ravel()
    scaled = np.zeros_like(degree)
    nonzero = degree > 0
    scaled[nonzero] = degree[nonzero] ** exponent
    return scaled


def row_normalize(matrix: sp.spmatrix) -> sp.csr_matrix:
    """D^-1 M with D the row sums [N]: float64 CSR, rows sum to 1; zero rows stay zero."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    return (sp.diags(_degree_power(m, -1.0)) @ m).tocsr()


def symmetric_normalize(matrix: sp.spmatrix) -> sp.csr_matrix:
    """D^-1/2 M D^-1/2 of a square M [N, N] with D the row sums: float64 CSR; zero-degree rows and columns stay zero."""
    m = sp.csr_matrix(matrix, dtype=np.float64)
    d = sp.diags(_degree_power(m, -0.5))
    return (d @ m @ d).tocsr()


def softmax_rows(graph: sp.spmatrix) -> sp.csr_matrix:
    """Row-wise softmax over the stored entries of ``graph`` [N, M]: float64 CSR, same pattern, rows sum to 1.

    Empty rows stay empty; each row is shifted by its maximum first, so large
    entries do not overflow. DRAGON's user-graph weights: the softmax of the
    kept co-occurrence counts of each user.
    """
    m = sp.csr_matrix(graph, dtype=np.float64, copy=True)
    if m.nnz == 0:
        return m
    row = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    row_max = np.full(m.shape[0], -np.inf)
    np.maximum.at(row_max, row, m.data)
    m.data = np.exp(m.data - row_max[row])
    m.data /= np.bincount(row, weights=m.data, minlength=m.shape[0])[row]
    return m


def symmetric_normalize_topk(values: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """D^-1/2 S D^-1/2 of a graph held as k entries per row: [I, k], differentiable in ``values``.

    values: S_ij [I, k] of row i towards ``neighbours`` [I, k] (int64 item
    ids); D_i = Σ_k values[i] (row sums, clamped at ``EPS``). Entry (i, j)
    becomes S_ij / √(D_i D_j) (LATTICE, Eq. 5).
    """
    inv_sqrt = values.sum(1).clamp(min=EPS).rsqrt()
    return values * inv_sqrt[:, None] * inv_sqrt[neighbours]
