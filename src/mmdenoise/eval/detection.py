"""Noise-detection quality of a denoiser's per-interaction judgement against planted noise.

None of the papers measure whether a denoiser actually finds the noise; with
a planted mask (``Dataset.noise.noisy_interactions``) we can. A denoiser's
``interaction_scores()`` says how clean it believes each training interaction
is (higher = cleaner), so the noise score is its negation.
"""
from __future__ import annotations

import numpy as np


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting ½ (Mann–Whitney U).

    scores: float [N]; positive: bool [N]. NaN when either class is empty.
    """
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata  # here: importing scipy.stats costs ~0.7 s at CLI start
    ranks = rankdata(scores)  # average ranks for ties
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at_count(scores: np.ndarray, positive: np.ndarray) -> float:
    """Share of true positives among the |positive| highest scores, ties at the cut in expectation.

    When the cut falls inside a group of equal scores (a binary clean/noisy
    partition is one big tie), the slots left are filled by a uniformly random
    draw from that group, counted by its expected share of positives; so the
    value does not depend on the order of the interactions. Equals recall at
    that cut, and 1 only for a perfect separation. NaN without positives.
    """
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    cut = np.partition(scores, scores.size - n_pos)[scores.size - n_pos]  # the n_pos-th highest
    above, tied = scores > cut, scores == cut
    slots = n_pos - int(above.sum())
    hits = positive[above].sum() + slots * positive[tied].mean()
    return float(hits / n_pos)


def per_user_auc(clean_scores: np.ndarray, noisy: np.ndarray, users: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Each user's ROC-AUC of the noise score −clean_scores against the planted mask, over that user's
    own training interactions (ties ½), for the users with at least one noisy and one clean one.

    clean_scores: float [E]; noisy: bool [E]; users: int [E]. Returns (users int64 [m] ascending,
    AUC float64 [m]). One ranking of (user, noise score) pairs, no loop over users: within a user, an
    interaction's rank is its average rank among all pairs minus the rows of the users before it.
    """
    clean_scores = np.asarray(clean_scores, dtype=np.float64).reshape(-1)
    noisy = np.asarray(noisy, dtype=bool).reshape(-1)
    users = np.asarray(users, dtype=np.int64).reshape(-1)
    if not clean_scores.shape == noisy.shape == users.shape:
        raise ValueError(f"interaction scores ({clean_scores.size}), noise mask ({noisy.size}) and users "
                         f"({users.size}) differ in length")
    if users.size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    from scipy.stats import rankdata  # here: importing scipy.stats costs ~0.7 s at CLI start
    score_rank = rankdata(-clean_scores, method="dense")  # ties share a rank, every rank is an integer
    ranks = rankdata(users * (score_rank.max() + 1) + score_rank)  # by user, then by noise score; ties averaged
    distinct, index, count = np.unique(users, return_inverse=True, return_counts=True)
    before = np.cumsum(count) - count  # rows of the users ranked before each user
    n_pos = np.bincount(index, weights=noisy, minlength=distinct.size)
    n_neg = count - n_pos
    rank_sum = np.bincount(index, weights=np.where(noisy, ranks - before[index], 0.0), minlength=distinct.size)
    both = (n_pos > 0) & (n_neg > 0)
    auc = (rank_sum[both] - n_pos[both] * (n_pos[both] + 1) / 2) / (n_pos[both] * n_neg[both])
    return distinct[both], auc


def detection_metrics(clean_scores: np.ndarray, noisy: np.ndarray) -> dict[str, float]:
    """{"auc", "precision@noise"} of the noise score −clean_scores against the planted mask.

    clean_scores: float [len(train)], higher = judged cleaner; noisy: bool [len(train)].
    """
    clean_scores = np.asarray(clean_scores, dtype=np.float64).reshape(-1)
    noisy = np.asarray(noisy, dtype=bool).reshape(-1)
    if clean_scores.shape != noisy.shape:
        raise ValueError(f"interaction scores have {clean_scores.size} entries, the noise mask {noisy.size}")
    return {"auc": roc_auc(-clean_scores, noisy), "precision@noise": precision_at_count(-clean_scores, noisy)}
