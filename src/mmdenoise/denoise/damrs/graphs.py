"""DA-MRS item–item graphs (paper §3.2): denoised semantic graphs (DIIG) and the behaviour graph (IIB).

DIIG, per modality m (Eq. 1):
  1. S^m = cosine similarity of the raw features;
  2. zero the entries below the global mean S̄^m = Σ_ij S^m_ij / |I|²;
  3. cross-modal consistency: zero (i, j) in every modality if it is zero in any;
  4. A^m_ij = 1 for the top-k surviving entries of row i with S^m_ij > 0.
The item itself is always kept as its own first neighbour (S_ii = 1 is the row
maximum anyway; forcing it makes the result robust to rounding and makes DIIG
without pruning identical to ``graphs.knn.knn_graph(include_self=True)``, the
``iig`` ablation). Built in row chunks holding every modality's chunk of S at
once, so memory is O(chunk · I · M), never O(I²); the mean needs no S at all:
Σ_ij x̂_iᵀx̂_j = ‖Σ_i x̂_i‖² (``data.info.mean_pairwise_cosine``).

IIB (Eq. 2): co-occurrence counts C = RᵀR of the binary training matrix R
(number of users who interacted with both items), entries with C_ij < ξ_B
dropped, the top-k of each row among j ≠ i kept (weights: counts, or 1 with
``weights="binary"``), A_ii = 1. Built sparse, a block of item rows at a time.

Both are returned unnormalised; the caller applies ``symmetric_normalize``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import scipy.sparse as sp
import torch

from ...data.info import mean_pairwise_cosine
from ...graphs.cache import cached_graphs
from ...graphs.knn import cached_knn_graph
from ...graphs.normalize import unit_rows

#: elements of one chunk of similarities (all modalities together): 2^24 floats = 64 MiB
CHUNK_ELEMENTS = 1 << 24
CACHE_VERSION = 1


def _chunk_rows(n_items: int, n_modalities: int, chunk_rows: int | None) -> int:
    if chunk_rows is not None:
        return max(1, chunk_rows)
    return max(1, min(n_items, CHUNK_ELEMENTS // max(1, n_items * n_modalities)))


def denoised_semantic_graphs(features: Mapping[str, np.ndarray], k: int, *,
                             chunk_rows: int | None = None) -> dict[str, sp.csr_matrix]:
    """DIIG adjacency A^m per modality (Eq. 1): binary float32 CSR [I, I], at most k entries per row.

    features: {modality: [I, d_m]} (rows may be memory maps; every modality has the same I).
    An entry survives if S^m_ij ≥ S̄^m and S^m_ij ≠ 0 in every modality and
    S^m_ij > 0 in its own; the k largest survivors of each row are kept, the
    item itself always among them. chunk_rows: rows per block (default: as
    many as fit in ``CHUNK_ELEMENTS`` similarities over all modalities).
    """
    names = list(features)
    units = [unit_rows(features[m]) for m in names]
    n = units[0].shape[0]
    # the mean of exactly the float32 matrix that is thresholded
    means = [mean_pairwise_cosine(x.numpy(), include_self=True, normalized=True) for x in units]
    k = min(k, n)
    step = _chunk_rows(n, len(names), chunk_rows)
    columns: list[list[np.ndarray]] = [[] for _ in names]
    rows_kept: list[list[np.ndarray]] = [[] for _ in names]
    for start in range(0, n, step):
        stop = min(start + step, n)
        sims = [x[start:stop] @ x.T for x in units]
        consistent = torch.ones_like(sims[0], dtype=torch.bool)
        for s, mean in zip(sims, means):
            consistent &= (s >= mean) & (s != 0)
        local = torch.arange(stop - start)
        for m, s in enumerate(sims):
            ranked = s.masked_fill(~(consistent & (s > 0)), -torch.inf)
            ranked[local, local + start] = torch.inf  # the item itself first
            values, index = torch.topk(ranked, k, dim=1)
            keep = (values > -torch.inf).numpy()
            columns[m].append(index.numpy()[keep])
            rows_kept[m].append(np.broadcast_to(np.arange(start, stop)[:, None], keep.shape)[keep])
    graphs = {}
    for m, name in enumerate(names):
        cols, rows = np.concatenate(columns[m]), np.concatenate(rows_kept[m])
        graphs[name] = sp.csr_matrix((np.ones(cols.size, dtype=np.float32), (rows, cols)), shape=(n, n))
    return graphs


def cached_semantic_graphs(fingerprint: str, features: Mapping[str, np.ndarray], k: int, *,
                           variant: str = "diig", cache_dir: Path | None = None) -> dict[str, sp.csr_matrix]:
    """The binary semantic graph of every modality, built once and cached on disk.

    variant: ``diig`` (Eq. 1, cached here, keyed on the fingerprint, the
    ordered modality names and shapes, k and the code version) or ``iig``
    (plain kNN per modality, ``cached_knn_graph`` with the item itself included).
    """
    if variant == "iig":
        return {m: cached_knn_graph(fingerprint, m, x, k, include_self=True, cache_dir=cache_dir)
                for m, x in features.items()}
    if variant != "diig":
        raise ValueError(f"unknown semantic graph variant {variant!r}; valid: diig, iig")
    names = list(features)
    params = {"modalities": names, "shapes": [list(features[m].shape) for m in names], "k": k}
    return cached_graphs("diig", fingerprint, params, lambda: denoised_semantic_graphs(features, k),
                         version=CACHE_VERSION, cache_dir=cache_dir)


def cooccurrence_blocks(interactions: sp.spmatrix, chunk_rows: int = 4096) -> Iterator[tuple[int, sp.csr_matrix]]:
    """C = RᵀR a block of item rows at a time: (first row, int64 CSR [rows, I]).

    interactions: the user × item matrix R [U, I] (any non-zero counts as 1),
    so C_ij is the number of users who interacted with both i and j.
    """
    r = sp.csr_matrix(interactions, dtype=np.int64, copy=True)
    r.data[:] = 1
    rt = r.T.tocsr()
    for start in range(0, r.shape[1], chunk_rows):
        yield start, (rt[start:start + chunk_rows] @ r).tocsr()


def behaviour_graph(interactions: sp.spmatrix, k: int, min_count: int = 2, *, weights: str = "count",
                    chunk_rows: int = 4096) -> sp.csr_matrix:
    """IIB adjacency A^c (Eq. 2): float32 CSR [I, I].

    interactions: binary training matrix R [U, I]. Row i keeps the k largest
    co-occurrence counts C_ij ≥ min_count over j ≠ i (ties: lower j first),
    weighted by the count (``weights="count"``, the paper) or 1 (``"binary"``),
    plus the self-loop A_ii = 1. Rows of C are built ``chunk_rows`` at a time.
    """
    if weights not in ("count", "binary"):
        raise ValueError(f"unknown behaviour graph weights {weights!r}; valid: count, binary")
    n = interactions.shape[1]
    parts_rows, parts_cols, parts_vals = [], [], []
    for start, counts in cooccurrence_blocks(interactions, chunk_rows):
        block = counts.tocoo()
        rows, cols, vals = block.row.astype(np.int64) + start, block.col.astype(np.int64), block.data
        keep = (rows != cols) & (vals >= min_count)
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        order = np.lexsort((cols, -vals, rows))  # by row, then count descending, then column
        rows, cols, vals = rows[order], cols[order], vals[order]
        rank = np.arange(rows.size) - np.searchsorted(rows, rows, side="left")
        top = rank < k
        parts_rows.append(rows[top])
        parts_cols.append(cols[top])
        parts_vals.append(vals[top])
    rows = np.concatenate(parts_rows + [np.arange(n)])
    cols = np.concatenate(parts_cols + [np.arange(n)])
    vals = np.concatenate(parts_vals + [np.ones(n, dtype=np.int64)]).astype(np.float32)
    if weights == "binary":
        vals[:] = 1.0
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
