"""User–user co-occurrence graph (DRAGON, Zhou et al. ECAI'23, §3.1 "user-user graph"), built in user-row chunks.

C = R Rᵀ with R the binary user × item training matrix: C_uv = number of
distinct items both u and v interacted with. The diagonal (self pairs) is
dropped, each user keeps its top-k co-users by count (ties: lower user id
first), and the kept counts become aggregation weights by a softmax over
each user's kept neighbours (DRAGON's user-graph weights,
``normalize.softmax_rows``). Peak memory is
O(chunk_rows · U + nnz(R)); C is never held whole.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .cache import cached_graphs

DEFAULT_CHUNK_ROWS = 1024


def _binary_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    r = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    r.sum_duplicates()
    r.data[:] = 1.0
    return r


def cooccurrence_graph(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, k: int, *,
                       chunk_rows: int = DEFAULT_CHUNK_ROWS) -> sp.csr_matrix:
    """Top-k co-occurrence counts per user: float32 CSR [U, U].

    users, items: int [E] training interactions (duplicates count once).
    Row u holds at most k entries: the users v ≠ u sharing the most items
    with u (count ≥ 1), ties broken by lower user id; a user with fewer
    co-users keeps all of them, one with none has an empty row. Not
    symmetric. Within a row, columns are sorted by id (CSR order).
    """
    r = _binary_matrix(np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64), n_users, n_items)
    rt = r.T.tocsr()
    rows, cols, counts = [], [], []
    for start in range(0, n_users, chunk_rows):
        block = (r[start:start + chunk_rows] @ rt).tocoo()  # [chunk, U] sparse counts
        row, col, count = block.row.astype(np.int64) + start, block.col.astype(np.int64), block.data
        other = row != col
        row, col, count = row[other], col[other], count[other]
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

