"""Per-user train/valid/test splits (MMRec's rule), vectorised over all users."""
from __future__ import annotations

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2


def split_labels(users: np.ndarray, *, seed: int = 0, ratios=(0.8, 0.1, 0.1),
                 timestamps: np.ndarray | None = None, chronological: bool = False) -> np.ndarray:
    """Assign each interaction a split label (0 train, 1 valid, 2 test), per user.

    A user with n >= 10 interactions gets round(ratios[1]·n) valid and
    round(ratios[2]·n) test items (at least one each), the rest train; a user
    with 3 <= n < 10 gets n−2 / 1 / 1 (MMRec's rule); a user with n < 3 keeps
    everything in train. ``chronological`` puts each user's latest
    interactions in test and the ones before them in valid; otherwise the
    choice is uniformly random under ``seed``.

    users: int [n]; timestamps: [n] (required when chronological).
    Returns int8 [n].
    """
    users = np.asarray(users, dtype=np.int64)
    n = users.size
    if chronological:
        if timestamps is None:
            raise ValueError("a chronological split needs timestamps")
        rng = np.random.default_rng(seed)
        # newest first; random tie-break keeps equal timestamps unbiased
        order = np.lexsort((rng.random(n), -np.asarray(timestamps, dtype=np.float64), users))
    else:
        order = np.lexsort((np.random.default_rng(seed).random(n), users))
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts)
    per_user = np.repeat(counts, counts)

    n_valid = np.maximum(1, np.rint(ratios[1] * per_user)).astype(np.int64)
    n_test = np.maximum(1, np.rint(ratios[2] * per_user)).astype(np.int64)
    small = per_user < 10
    n_valid[small] = 1
    n_test[small] = 1
    tiny = per_user < 3
    n_valid[tiny] = 0
    n_test[tiny] = 0

    labels_sorted = np.full(n, TRAIN, dtype=np.int8)
    labels_sorted[rank < n_test + n_valid] = VALID
    labels_sorted[rank < n_test] = TEST
    labels = np.empty(n, dtype=np.int8)
    labels[order] = labels_sorted
    return labels
