"""How well a modality's item–item kNN graph agrees with the co-interaction graph (informativeness).

For every item i, N_f(i) is its k nearest items by cosine of the modality's
features (itself excluded; ``knn.knn_graph``) and N_c(i) its top-k items by
the number of training users who interacted with both (``cooccurrence_graph``
with the roles of users and items swapped; ties to the lower id). The
agreement of the item is |N_f(i) ∩ N_c(i)| / min(k, |N_c(i)|), the share of
its co-interaction neighbours (as many as exist, at most k) that the features
find; overlap@k is its mean over the items that have at least one
co-interaction neighbour. Random feature neighbours score k / (I − 1) in
expectation (``chance``), so ``lift`` = overlap / chance reads as "times
better than random". It complements the mean pairwise cosine (DA-MRS
Table 1): a modality can be spread out (low mean cosine) and still say
nothing about what users consume together.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .cooccurrence import cooccurrence_graph
from .knn import knn_graph


def neighbour_overlap(feature_graph: sp.spmatrix, interaction_graph: sp.spmatrix, k: int) -> float:
    """Mean over items with a co-interaction neighbour of |N_f ∩ N_c| / min(k, |N_c|).

    feature_graph, interaction_graph: [I, I] sparse, the stored entries of a
    row are that item's neighbours. NaN when no item has a co-interaction
    neighbour.
    """
    f = sp.csr_matrix(feature_graph, copy=True)
    c = sp.csr_matrix(interaction_graph, copy=True)
    f.data[:] = 1.0
    c.data[:] = 1.0
    shared = np.asarray(f.multiply(c).sum(axis=1)).ravel()
    degree = np.diff(c.indptr)
    has = degree > 0
    if not has.any():
        return float("nan")
    return float(np.mean(shared[has] / np.minimum(k, degree[has])))


def modality_agreement(features: np.ndarray, users: np.ndarray, items: np.ndarray, n_users: int,
                       n_items: int, k: int = 10, *, interaction_graph: sp.spmatrix | None = None) -> dict:
    """overlap@k of the kNN graph of ``features`` [I, d] with the co-interaction graph of (users, items) [E].

    interaction_graph: the co-interaction top-k graph when already built (to
    share it between modalities); built from (users, items) otherwise.
    Returns {"k", "overlap", "chance", "lift"} (see the module docstring).
    """
    if interaction_graph is None:
        interaction_graph = item_cooccurrence(users, items, n_users, n_items, k)
    overlap = neighbour_overlap(knn_graph(features, k, include_self=False), interaction_graph, k)
    chance = min(k, n_items - 1) / max(n_items - 1, 1)
    return {"k": k, "overlap": overlap, "chance": chance, "lift": overlap / chance}


def item_cooccurrence(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, k: int) -> sp.csr_matrix:
    """Top-k co-interaction neighbours per item: float32 CSR [I, I] of shared-user counts (self excluded)."""
    return cooccurrence_graph(items, users, n_items, n_users, k)
