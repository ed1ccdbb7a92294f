"""Adaptive Modality Similarity Calibration (GUIDER, WSDM'25 §4.1, Eq. 2–5), vectorised over users.

Given each training interaction's teacher loss ℓ(u, i):
- reliable  I_rel(u) = {i : ℓ(u,i) ≤ mean_{i∈I_u} ℓ(u,i)}, spurious I_spr(u) the rest (Eq. 2);
- a spurious i is recovered as clean when some reliable i' of the same user has
  S(i, i') = S_modal(i, i') · S_conf(i) > S_thres (Eq. 3–4), with
  S_modal = max over modalities of the raw-feature cosine (Eq. 5);
- I_true = I_rel ∪ recovered, I_false = the rest.

Only max_{i' ∈ I_rel(u)} S_modal(i, i') is needed per spurious i, so the work
is the (spurious, reliable) pairs of each user, Σ_u |I_spr(u)|·|I_rel(u)| ≤
Σ_u |I_u|²/4, done as batched matrix products over padded groups of users of
similar size (no Python loop over users) within a memory budget.
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


def grouped_by_user(index: np.ndarray, users: np.ndarray,
                    n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries of ``index`` ordered by user, with each user's start and count in that order."""
    order = index[np.argsort(users[index], kind="stable")]
    counts = np.bincount(users[index], minlength=n_users)
    return order, np.cumsum(counts) - counts, counts


def _padded(order: np.ndarray, starts: np.ndarray, counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``order`` per user as a padded [G, width] index matrix, and its validity mask."""
    local = np.arange(width)[None, :]
    valid = local < counts[:, None]
    index = np.where(valid, starts[:, None] + local, 0)
    return order[np.minimum(index, max(order.size - 1, 0))], valid


def best_reliable_similarity(users: np.ndarray, items: np.ndarray, reliable: np.ndarray, n_users: int,
                             features: dict[str, torch.Tensor], *,
                             chunk_bytes: int = 256 << 20) -> np.ndarray:
    """max_{i' ∈ I_rel(u)} S_modal(i, i') for every spurious interaction (u, i); NaN elsewhere. float32 [E].

    features: row-normalised {modality: [I, d_m]} (cosine = dot product).
    Users are sorted by their pair count and taken in groups; each group's
    spurious and reliable item rows are gathered once into padded
    [G, S_max, d] and [G, R_max, d] blocks and compared by one batched matrix
    product per modality, so each row is read once per user (not once per
    pair). A group's blocks stay within ``chunk_bytes`` (at least one user).
    """
    spurious_idx, spr_start, spr_count = grouped_by_user(np.flatnonzero(~reliable), users, n_users)
    reliable_idx, rel_start, rel_count = grouped_by_user(np.flatnonzero(reliable), users, n_users)
    best = np.full(users.size, np.nan, dtype=np.float32)
    active = np.flatnonzero((spr_count > 0) & (rel_count > 0))
    if active.size == 0:
        return best
    active = active[np.argsort(spr_count[active] * rel_count[active], kind="stable")]
    width = sum(x.shape[1] for x in features.values())
    item_index = torch.from_numpy(items)
    first = 0
    while first < active.size:
        # grow the group while its padded blocks fit (sizes only grow along the sorted order)
        s_max = np.maximum.accumulate(spr_count[active[first:]])
        r_max = np.maximum.accumulate(rel_count[active[first:]])
        size = np.arange(1, s_max.size + 1)
        cost = 4 * size * (s_max * r_max + (s_max + r_max) * width)
        last = first + max(1, int(np.searchsorted(cost, chunk_bytes, side="right")))
        group = active[first:last]
        spr, spr_valid = _padded(spurious_idx, spr_start[group], spr_count[group], int(spr_count[group].max()))
        rel, rel_valid = _padded(reliable_idx, rel_start[group], rel_count[group], int(rel_count[group].max()))
        spr_items, rel_items = item_index[torch.from_numpy(spr)], item_index[torch.from_numpy(rel)]
        sim = None
        for x in features.values():
            block = torch.bmm(x[spr_items], x[rel_items].transpose(1, 2))  # [G, S_max, R_max]
            sim = block if sim is None else torch.maximum(sim, block)
        sim.masked_fill_(~torch.from_numpy(rel_valid)[:, None, :], -torch.inf)
        best[spr[spr_valid]] = sim.amax(2).numpy()[spr_valid]
        first = last
    return best


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
