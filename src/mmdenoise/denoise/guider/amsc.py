"""Adaptive Modality Similarity Calibration (GUIDER, WSDM'25 §4.1, Eq. 2–5), vectorised over users.

Given each training interaction's teacher loss ℓ(u, i):
- reliable  I_rel(u) = {i : ℓ(u,i) ≤ mean_{i∈I_u} ℓ(u,i)}, spurious I_spr(u) the rest (Eq. 2);
- a spurious i is recovered as clean when some reliable i' of the same user has
  S(i, i') = S_modal(i, i') · S_conf(i) > S_thres (Eq. 3–4), with
  S_modal = max over modalities of the raw-feature cosine (Eq. 5);
- I_true = I_rel ∪ recovered, I_false = the rest.

Only max_{i' ∈ I_rel(u)} S_modal(i, i') is needed per spurious i, so the work
is the (spurious, reliable) pairs of each user, Σ_u |I_spr(u)|·|I_rel(u)| ≤
Σ_u |I_u|²/4. The pairs are enumerated for groups of users at once with
index arithmetic (no Python loop over users), in chunks whose feature
gathers stay under a memory budget.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Partition:
    """AMSC's judgement of every training interaction (arrays [E], E = len(train)).

    reliable: low-loss split of Eq. 2; recovered: spurious but recovered by Eq. 3;
    clean: I_true = reliable | recovered; similarity: max_{i'} S(i, i') for
    spurious interactions (NaN for reliable ones, and for spurious ones whose
    user has no reliable item).
    """

    reliable: np.ndarray
    recovered: np.ndarray
    clean: np.ndarray
    similarity: np.ndarray


def loss_split(users: np.ndarray, losses: np.ndarray, n_users: int) -> np.ndarray:
    """Eq. 2: bool [E], True where ℓ(u, i) ≤ the mean loss of user u's interactions."""
    counts = np.bincount(users, minlength=n_users)
    sums = np.bincount(users, weights=losses.astype(np.float64), minlength=n_users)
    mean = sums / np.maximum(counts, 1)
    return losses <= mean[users]


def _grouped(index: np.ndarray, users: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries of ``index`` ordered by user, with each user's start and count in that order."""
    order = index[np.argsort(users[index], kind="stable")]
    counts = np.bincount(users[index], minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


def best_reliable_similarity(users: np.ndarray, items: np.ndarray, reliable: np.ndarray, n_users: int,
                             features: dict[str, torch.Tensor], *,
                             chunk_bytes: int = 256 << 20) -> np.ndarray:
    """max_{i' ∈ I_rel(u)} S_modal(i, i') for every spurious interaction (u, i); NaN elsewhere. float32 [E].

    features: row-normalised {modality: [I, d_m]} (cosine = dot product).
    """
    spurious_idx, spr_start, spr_count = _grouped(np.flatnonzero(~reliable), users, n_users)
    reliable_idx, rel_start, rel_count = _grouped(np.flatnonzero(reliable), users, n_users)
    pairs_per_user = spr_count.astype(np.int64) * rel_count
    best = torch.full((users.size,), -torch.inf)
    width = sum(x.shape[1] for x in features.values())
    max_pairs = max(1, chunk_bytes // (8 * width))  # two gathered rows of float32 per pair
    active = np.flatnonzero(pairs_per_user)
    bounds = np.cumsum(pairs_per_user[active])
    first = 0
    while first < active.size:  # a group of users whose pairs fit the budget (at least one user)
        last = max(first + 1, int(np.searchsorted(bounds, bounds[first] - pairs_per_user[active[first]]
                                                  + max_pairs, side="right")))
        group = active[first:last]
        counts = pairs_per_user[group]
        owner = np.repeat(group, counts)
        offset = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        spr = spurious_idx[spr_start[owner] + offset // rel_count[owner]]
        rel = reliable_idx[rel_start[owner] + offset % rel_count[owner]]
        ia, ib = torch.from_numpy(items[spr]), torch.from_numpy(items[rel])
        sim = torch.stack([(x[ia] * x[ib]).sum(1) for x in features.values()]).amax(0)
        best.scatter_reduce_(0, torch.from_numpy(spr), sim, reduce="amax")
        first = last
    out = best.numpy().astype(np.float32)
    out[reliable | np.isinf(out)] = np.nan
    return out


def calibrate(users: np.ndarray, items: np.ndarray, losses: np.ndarray, n_users: int,
              features: dict[str, torch.Tensor], confidence: np.ndarray, threshold: float = 0.9,
              *, chunk_bytes: int = 256 << 20) -> Partition:
    """AMSC (Eq. 2–5) over all training interactions (u, i) with teacher losses ``losses`` [E].

    confidence: S_conf per item [I] (``hashing.modality_confidence``);
    threshold: S_thres (1.0 or more recovers nothing beyond exact duplicates).
    """
    reliable = loss_split(users, losses, n_users)
    modal = best_reliable_similarity(users, items, reliable, n_users, features, chunk_bytes=chunk_bytes)
    similarity = modal * confidence[items]
    recovered = ~reliable & (np.nan_to_num(similarity, nan=-np.inf) > threshold)
    return Partition(reliable, recovered, reliable | recovered, similarity)
