"""Co-occurrence top-k graphs, built in row chunks: DRAGON's user–user graph and DA-MRS's item–item IIB.

For row entities (users, or items) linked through column entities (the
items, or the users) of the training interactions: C = R Rᵀ with R the
binary row × column matrix, so C_ab = number of distinct columns a and b
share. The diagonal (self pairs) is dropped, counts below ``min_count`` too,
and each row keeps its top-k by count (ties: lower id first). Peak memory is
O(chunk_rows · N + nnz(R)); C is never held whole.

- DRAGON (Zhou et al. ECAI'23, §3.1 "user-user graph"): rows are users,
  top-k counts, turned into aggregation weights by ``normalize.softmax_rows``.
- DA-MRS (Xv et al. KDD'24, §3.2.2, Eq. 2): rows are items, counts below
  ξ_B dropped, plus self-loops (``behaviour_graph``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .cache import cached_graphs

DEFAULT_CHUNK_ROWS = 1024
BEHAVIOUR_WEIGHTS = ("count", "binary")


def _binary_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    r = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    r.sum_duplicates()
    r.data[:] = 1.0
    return r


def cooccurrence_graph(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, k: int, *,
                       min_count: int = 1, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> sp.csr_matrix:
    """Top-k co-occurrence counts per user: float32 CSR [U, U].

    users, items: int [E] interactions (duplicates count once); swap the
    roles (items, users, n_items, n_users) for the item–item graph.
    Row u holds at most k entries: the users v ≠ u sharing the most items
    with u, at least ``min_count`` of them, ties broken by lower user id; a
    user with fewer such co-users keeps all of them, one with none has an
    empty row. Not symmetric. Within a row, columns are sorted by id (CSR
    order). Counts are exact (float32 holds integers up to 2^24).
    """
    r = _binary_matrix(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), n_users, n_items)
    rt = r.T.tocsr()
    rows, cols, counts = [], [], []
    for start in range(0, n_users, chunk_rows):
        block = (r[start:start + chunk_rows] @ rt).tocoo()  # [chunk, U] sparse counts
        row, col, count = block.row.astype(np.int64) + start, block.col.astype(np.int64), block.data
        kept = (row != col) & (count >= min_count)
        row, col, count = row[kept], col[kept], count[kept]
        order = np.lexsort((col, -count, row))  # by user, then count descending, then co-user id
        row, col, count = row[order], col[order], count[order]
        first = np.searchsorted(row, row, side="left")  # start of each entry's row segment
        keep = np.arange(row.size) - first < k
        rows.append(row[keep])
        cols.append(col[keep])
        counts.append(count[keep])
    graph = sp.csr_matrix((np.concatenate(counts).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n_users, n_users))
    graph.sort_indices()
    return graph


def cached_cooccurrence_graph(fingerprint: str, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                              k: int, *, cache_dir: Path | None = None) -> sp.csr_matrix:
    """``cooccurrence_graph`` with the on-disk cache keyed on the dataset fingerprint and every parameter."""
    params = {"k": k, "n_users": n_users, "n_items": n_items, "n_interactions": int(len(users))}
    graphs = cached_graphs("cooccurrence", fingerprint, params, version=1, cache_dir=cache_dir,
                           build=lambda: {"users": cooccurrence_graph(users, items, n_users, n_items, k)})
    return graphs["users"]


def behaviour_graph(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, k: int, min_count: int = 2,
                    *, weights: str = "count", chunk_rows: int = DEFAULT_CHUNK_ROWS) -> sp.csr_matrix:
    """DA-MRS's item–item behaviour graph IIB, A^c (Eq. 2): float32 CSR [I, I].

    users, items: int [E] training interactions (duplicates count once).
    Row i keeps the k largest co-occurrence counts C_ij ≥ min_count (ξ_B)
    over j ≠ i, C_ij = number of users who interacted with both (ties: lower
    j first), weighted by the count (``weights="count"``, the paper) or 1
    (``"binary"``), plus the self-loop A_ii = 1. Unnormalised.
    """
    if weights not in BEHAVIOUR_WEIGHTS:
        raise ValueError(f"unknown behaviour graph weights {weights!r}; valid: {', '.join(BEHAVIOUR_WEIGHTS)}")
    counts = cooccurrence_graph(items, users, n_items, n_users, k, min_count=min_count, chunk_rows=chunk_rows)
    graph = (counts + sp.identity(n_items, dtype=np.float32, format="csr")).tocsr()
    if weights == "binary":
        graph.data[:] = 1.0
    return graph
