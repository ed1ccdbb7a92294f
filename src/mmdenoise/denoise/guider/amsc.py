"""Adaptive Modality Similarity Calibration (GUIDER, WSDM'25 §4.1, Eq. 2–5), vectorised over users.

Given each training interaction's teacher loss ℓ(u, i):
- reliable  I_rel(u) = {i : ℓ(u,i) ≤ mean_{i∈I_u} ℓ(u,i)}, spurious I_spr(u) the rest (Eq. 2);
- a spurious i is recovered as clean when some reliable i' of the same user has
  S(i, i') = S_modal(i, i') · S_conf(i) > S_thres (Eq. 3–4), with
  S_modal = max over modalities of the raw-feature cosine (Eq. 5);
- I_true = I_rel ∪ recovered, I_false = the rest.

S(i, i') does not depend on the losses, so the pairs of one user's items that
clear S_thres are found once per run (``candidate_pairs``: Σ_u |I_u|² work as
batched matrix products over padded groups of users of similar size, no
Python loop over users, within a memory budget) and each recalibration is a
pass over those pairs (``calibrate``), linear in their number.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Partition:
    """AMSC's judgement of every training interaction (arrays [E], E = len(train)).

    reliable: low-loss split of Eq. 2; recovered: spurious but recovered by Eq. 3;
    clean: I_true = reliable | recovered; similarity: for recovered
    interactions, the largest S(i, i') over the reliable i' that vouch for it
    (NaN elsewhere).
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


@dataclass
class Candidates:
    """Ordered pairs (e, e') of distinct training interactions of one user whose items are similar
    enough for Eq. 3: S(i_e, i_e') = S_modal(i_e, i_e') · S_conf(i_e) > S_thres (arrays [P])."""

    first: np.ndarray   # int64: the interaction that may be recovered (i)
    second: np.ndarray  # int64: the partner that would vouch for it (i')
    score: np.ndarray   # float32: S(i, i')

    @classmethod
    def empty(cls) -> "Candidates":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return self.first.size


def candidate_pairs(users: np.ndarray, items: np.ndarray, n_users: int, features: dict[str, torch.Tensor],
                    confidence: np.ndarray, threshold: float, *, chunk_bytes: int = 256 << 20) -> Candidates:
    """Every pair of one user's interactions that clears S_thres (Eq. 3–5), computed once per run.

    S depends only on the two items, not on the losses, so the pairs that can
    ever recover an item are fixed; each recalibration then only asks which of
    them join a spurious i to a reliable i' (``calibrate``), in O(P).
    features: row-normalised {modality: [I, d_m]} (cosine = dot product);
    confidence: S_conf [I] (a negative one counts as 0, so two negative
    factors cannot make a large S). Users are sorted by interaction count and taken in
    groups; each group's item rows are gathered once into a padded [G, n, d]
    block and compared by one batched matrix product per modality (Σ_u |I_u|²
    work, no Python loop over users); a group's blocks stay within
    ``chunk_bytes`` (at least one user). Memory beyond that is the P pairs.
    """
    if users.size == 0 or threshold >= float(confidence.max()) * (1 + 1e-6):  # S ≤ S_conf: nothing passes
        return Candidates.empty()
    order, start, count = grouped_by_user(np.arange(users.size), users, n_users)
    active = np.flatnonzero(count >= 2)
    active = active[np.argsort(count[active], kind="stable")]
    width = sum(x.shape[1] for x in features.values())
    item_index = torch.from_numpy(items)
    conf = torch.from_numpy(np.asarray(confidence, np.float32)).clamp_min(0)  # distrust never vouches
    first, second, score = [], [], []
    head = 0
    while head < active.size:
        n_max = count[active[head:]]  # sorted: the running maximum is the current count
        size = np.arange(1, n_max.size + 1)
        last = head + max(1, int(np.searchsorted(4 * size * (n_max * n_max + n_max * width), chunk_bytes,
                                                 side="right")))
        group = active[head:last]
        index, valid = _padded(order, start[group], count[group], int(count[group].max()))
        group_items = item_index[torch.from_numpy(index)]  # [G, n]
        sim = None
        for x in features.values():
            rows = x[group_items]
            block = torch.bmm(rows, rows.transpose(1, 2))  # [G, n, n]
            sim = block if sim is None else torch.maximum(sim, block)
        sim.mul_(conf[group_items].unsqueeze(2))  # S(i, i') = S_modal · S_conf(i), row i
        valid_t = torch.from_numpy(valid)
        keep = (sim > threshold) & valid_t.unsqueeze(2) & valid_t.unsqueeze(1)
        keep.diagonal(dim1=1, dim2=2).fill_(False)
        g, r, c = (t.numpy() for t in keep.nonzero(as_tuple=True))
        first.append(index[g, r])
        second.append(index[g, c])
        score.append(sim[keep].numpy())
        head = last
    if not first:
        return Candidates.empty()
    return Candidates(np.concatenate(first), np.concatenate(second), np.concatenate(score).astype(np.float32))


def calibrate(users: np.ndarray, losses: np.ndarray, n_users: int, candidates: Candidates) -> Partition:
    """AMSC (Eq. 2–4) over all training interactions (u, i) with teacher losses ``losses`` [E].

    candidates: the pairs clearing S_thres (``candidate_pairs``); a spurious
    interaction is recovered when one of its pairs leads to a reliable one.
    """
    reliable = loss_split(users, losses, n_users)
    vouched = ~reliable[candidates.first] & reliable[candidates.second]
    recovered = np.zeros(users.size, dtype=bool)
    recovered[candidates.first[vouched]] = True
    similarity = np.full(users.size, np.nan, dtype=np.float32)
    np.fmax.at(similarity, candidates.first[vouched], candidates.score[vouched])
    return Partition(reliable, recovered, reliable | recovered, similarity)
