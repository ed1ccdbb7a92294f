"""Paired significance tests between two runs on the same split (docs/design.md, Evaluation protocol).

Two runs are compared user by user: ``align`` keeps the users both runs
evaluated, then a two-sided paired t-test (``scipy.stats.ttest_rel``) and a
two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, zero
differences dropped) are run on the aligned per-user values.

Degenerate inputs get a defined answer instead of scipy's NaN and warnings:
identical runs (every difference 0) give statistic 0 and p = 1; fewer than two
pairs give p = 1 for the t-test (no evidence either way); a constant non-zero
difference (equal up to rounding) gives the t-test's limit, statistic ±inf and
p = 0.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .evaluator import EvalResult


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two aligned per-user arrays as float64 [n]; ValueError on a shape mismatch or NaN/inf."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired tests need two 1-D arrays of equal length, got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-user values must be finite (NaN or inf found)")
    return a, b


def paired_ttest(a, b) -> tuple[float, float]:
    """Two-sided paired t-test of a − b = 0 on aligned per-user values → (statistic, p).

    a, b: float [n], entry j of both belonging to the same user.
    """
    a, b = _paired(a, b)
    diff = a - b
    if diff.size < 2:
        return 0.0, 1.0
    mean = diff.mean()
    # constant differences (up to rounding, scipy's own threshold): zero variance, t = ±inf or 0/0
    if np.max(np.abs(diff - mean)) <= 10 * np.finfo(np.float64).eps * abs(mean):
        return (0.0, 1.0) if mean == 0 else (float(np.copysign(np.inf, mean)), 0.0)
    from scipy import stats  # here: importing scipy.stats costs ~0.7 s at CLI start
    result = stats.ttest_rel(a, b)
    return float(result.statistic), float(result.pvalue)


def mean_ci(differences, level: float = 0.95) -> tuple[float, float]:
    """The two-sided ``level`` confidence interval of the mean of paired differences [n] (Student's t with
    n − 1 degrees of freedom: mean ± t · sd / √n, the interval that matches :func:`paired_ttest`).

    Fewer than two differences give (nan, nan); differences equal up to rounding give (mean, mean).
    """
    diff = np.asarray(differences, dtype=np.float64)
    if diff.ndim != 1 or not np.isfinite(diff).all():
        raise ValueError(f"differences must be a finite 1-D array, got shape {diff.shape}")
    if diff.size < 2:
        return float("nan"), float("nan")
    mean = float(diff.mean())
    if np.max(np.abs(diff - mean)) <= 10 * np.finfo(np.float64).eps * abs(mean):
        return mean, mean
    from scipy import stats  # here: importing scipy.stats costs ~0.7 s at CLI start
    half = float(stats.t.ppf((1 + level) / 2, diff.size - 1) * diff.std(ddof=1) / np.sqrt(diff.size))
    return mean - half, mean + half


def p_text(p: float) -> str:
    """A p-value as the tables print it: two significant digits; a p below float64's smallest normal
    number (the t distribution's tail underflows to 0 at ~6,000 paired users) as an upper bound, not as 0."""
    if p < sys.float_info.min:
        return f"< {sys.float_info.min:.0e}"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def fdr_adjusted(p_values) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values, float64 [m], of ``p_values`` [m] (any order; each in [0, 1]).

    Comparison j is a discovery at false-discovery rate q when its adjusted
    p < q: the step-up rule p_(k) ≤ k q / m of Benjamini & Hochberg (1995)
    (``scipy.stats.false_discovery_control``, method "bh"). An empty input
    gives an empty array.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(f"p-values must be a 1-D array of values in [0, 1], got shape {p.shape}")
    from scipy import stats  # here: importing scipy.stats costs ~0.7 s at CLI start
    return stats.false_discovery_control(p, method="bh") if p.size else p.copy()


def wilcoxon(a, b) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test on aligned per-user values → (statistic, p).

    a, b: float [n], entry j of both belonging to the same user. Zero
    differences are dropped (scipy's ``zero_method="wilcox"``); the statistic
    is scipy's (the smaller of the positive and negative rank sums).
    """
    a, b = _paired(a, b)
    if not np.any(a != b):
        return 0.0, 1.0
    from scipy import stats  # here: importing scipy.stats costs ~0.7 s at CLI start
    result = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def align(users_a, values_a, users_b, values_b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Restrict two runs' per-user arrays to the users both evaluated.

    users_*: int [n_*] distinct user ids; values_*: [n_*] aligned with them.
    Returns (users int64 [m] ascending, values_a [m], values_b [m]).
    """
    pairs = []
    for name, users, values in (("a", users_a, values_a), ("b", users_b, values_b)):
        users, values = np.asarray(users, dtype=np.int64), np.asarray(values)
        if users.ndim != 1 or users.shape != values.shape:
            raise ValueError(f"run {name}: users {users.shape} and values {values.shape} must be 1-D and aligned")
        if np.unique(users).size != users.size:
            raise ValueError(f"run {name}: user ids repeat; per-user arrays hold one value per user")
        pairs.append((users, values))
    (ua, va), (ub, vb) = pairs
    common, ia, ib = np.intersect1d(ua, ub, assume_unique=True, return_indices=True)
    return common, va[ia], vb[ib]


@dataclass(frozen=True)
class Comparison:
    """Run a vs run b on one metric over their common users (means over those users)."""

    metric: str
    n_users: int
    mean_a: float
    mean_b: float
    p_ttest: float
    p_wilcoxon: float


def _users_and_values(run: EvalResult | Mapping[str, np.ndarray], metric: str, split: str):
    """(users, values) of ``metric`` from an EvalResult or a per_user.npz mapping."""
    if isinstance(run, EvalResult):
        if metric not in run.per_user:
            raise KeyError(f"unknown metric {metric!r}; metrics: {sorted(run.per_user)}")
        return run.users, run.per_user[metric]
    users_key = {"test": "users", "valid": "valid_users"}.get(split)
    if users_key is None:
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    key = f"{split}_{metric}"
    if key not in run or users_key not in run:
        known = sorted(k[len(split) + 1:] for k in run if k.startswith(f"{split}_") and k != "valid_users")
        raise KeyError(f"per-user arrays have no {key!r} (or {users_key!r}); {split} metrics: {known}")
    return run[users_key], run[key]


def compare(per_user_a: EvalResult | Mapping[str, np.ndarray], per_user_b: EvalResult | Mapping[str, np.ndarray],
            metric: str = "recall@20", split: str = "test") -> Comparison:
    """Compare two runs on ``metric`` with both paired tests.

    per_user_a, per_user_b: each an ``EvalResult`` or the arrays of a run folder's
        ``per_user.npz`` (``read_per_user``: ``users``/``valid_users`` and
        ``<split>_<metric>``); ``split`` picks the arrays of the latter.
    Raises ValueError when the runs share no user.
    """
    users, a, b = align(*_users_and_values(per_user_a, metric, split), *_users_and_values(per_user_b, metric, split))
    if users.size == 0:
        raise ValueError("the two runs have no evaluated user in common")
    return Comparison(metric, int(users.size), float(a.mean()), float(b.mean()),
                      paired_ttest(a, b)[1], wilcoxon(a, b)[1])
