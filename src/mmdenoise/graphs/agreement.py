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

``vouching_lift`` asks the question at a similarity threshold instead of at
the top k: of the item pairs whose cosine exceeds τ (the pairs the modality
alone would call similar, e.g. GUIDER's Eq. 5 at S_thres), what share are
co-interaction neighbours, relative to all pairs. A coarse modality can
agree well at the top k and still vouch badly at τ: ml-100k's 19-d multi-hot
genre has overlap@10 0.021 (text 0.016), but 7.5% of all item pairs share a
genre set (cosine 1), and those pairs are co-interaction neighbours 0.41×
as often as random pairs (text above 0.9: 13×).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from .cooccurrence import cooccurrence_graph
from .knn import knn_graph
from .normalize import unit_rows


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


def vouching_lift(features: np.ndarray, interaction_graph: sp.spmatrix, threshold: float, *,
                  anchors: int = 2048, chunk_rows: int = 256, seed: int = 0) -> dict:
    """How much more often items with cosine > ``threshold`` are co-interaction neighbours than random pairs.

    features: [I, d]; interaction_graph: [I, I] sparse, a row's stored
    entries are that item's co-interaction neighbours (``item_cooccurrence``).
    The pairs (a, j), j ≠ a, are scanned for ``anchors`` seeded random anchor
    items a (all items when I ≤ anchors), ``chunk_rows`` anchors at a time:
    memory O(chunk_rows · I), time O(anchors · I · d), never I × I.
    Returns {"pairs": scanned pairs above the threshold, "hits": those that
    are neighbours, "share": pairs / scanned pairs, "precision": hits / pairs,
    "chance": share of all distinct pairs that are neighbours, "lift":
    precision / chance}; precision and lift are NaN when pairs is 0.
    """
    graph = sp.csr_matrix(interaction_graph)
    n = graph.shape[0]
    rows = unit_rows(features)
    pick = (np.arange(n) if n <= anchors
            else np.sort(np.random.default_rng(seed).choice(n, anchors, replace=False)))
    above = hits = 0
    for start in range(0, pick.size, chunk_rows):
        anchor = pick[start:start + chunk_rows]
        vouched = (rows[torch.from_numpy(anchor)] @ rows.T).numpy() > threshold  # [chunk, I]
        vouched[np.arange(anchor.size), anchor] = False
        neighbours = graph[anchor].toarray() != 0
        above += int(vouched.sum())
        hits += int((vouched & neighbours).sum())
    chance = graph.nnz / max(n * (n - 1), 1)
    precision = hits / above if above else float("nan")
    return {"pairs": above, "hits": hits, "share": above / max(pick.size * (n - 1), 1), "precision": precision,
            "chance": chance,
            "lift": precision / chance if chance > 0 else float("nan")}
