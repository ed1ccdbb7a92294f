"""Paired significance tests between two runs on the same split (DESIGN §4)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def paired_ttest(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided paired t-test on aligned per-user values → (statistic, p); p = 1 when a == b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = a - b
    if diff.size < 2 or np.all(diff == diff[0]):
        return (0.0, 1.0) if diff.size == 0 or diff[0] == 0 else (float(np.sign(diff[0]) * np.inf), 0.0)
    result = stats.ttest_rel(a, b)
    return float(result.statistic), float(result.pvalue)


def wilcoxon(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test on aligned per-user values → (statistic, p); p = 1 when a == b."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    if not np.any(diff != 0):
        return 0.0, 1.0
    result = stats.wilcoxon(diff, zero_method="wilcox")
    return float(result.statistic), float(result.pvalue)


def align(users_a: np.ndarray, values_a: np.ndarray, users_b: np.ndarray,
          values_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Restrict two per-user arrays to their common users → (users, a, b), sorted by user."""
    common, ia, ib = np.intersect1d(users_a, users_b, assume_unique=True, return_indices=True)
    return common, np.asarray(values_a)[ia], np.asarray(values_b)[ib]


@dataclass
class Comparison:
    metric: str
    n_users: int
    mean_a: float
    mean_b: float
    p_ttest: float
    p_wilcoxon: float


def compare(per_user_a: dict[str, np.ndarray], per_user_b: dict[str, np.ndarray],
            metric: str = "recall@20", split: str = "test") -> Comparison:
    """Compare two runs' ``per_user.npz`` contents on ``split``/``metric`` with both paired tests."""
    users_key = "users" if split == "test" else "valid_users"
    key = f"{split}_{metric}"
    users, a, b = align(per_user_a[users_key], per_user_a[key], per_user_b[users_key], per_user_b[key])
    return Comparison(metric, int(users.size), float(a.mean()), float(b.mean()),
                      paired_ttest(a, b)[1], wilcoxon(a, b)[1])
