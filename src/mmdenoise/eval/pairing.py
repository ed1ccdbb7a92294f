"""Run folders compared user by user: the per-user test values of groups of runs
(seeds) averaged, paired between two groups, per user split, pooled over splits or per distinct user,
and the one significance rule of every table (:func:`significantly_better`).

Runs are read from their folders (``result.json``, ``per_user.npz``). Only runs on the same data
condition (:func:`dataset_key`: the dataset's fingerprint, or a noised copy's source and planted
noise) are averaged or paired; anything else is a RunError. The tests themselves are
:mod:`eval.significance`'s.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import RunError
from ..training import record
from .significance import align, mean_ci, paired_ttest, wilcoxon


def dataset_key(result: dict) -> tuple:
    """The data condition of a run: what groups runs into one table and what runs averaged or paired
    user by user must share. (name, fingerprint) for clean data; for a noised copy (which keeps its
    source's name) (name, source fingerprint, the planted-noise spec without its seed), so a noise
    study's seeds, each its own noise draw, average within their level and never with other levels
    or the clean data."""
    data = result["dataset"]
    noise = data.get("noise")
    if isinstance(noise, dict) and noise.get("source"):
        spec = json.dumps({k: v for k, v in noise.items() if k not in ("seed", "source")}, sort_keys=True)
        return str(data.get("name")), noise["source"], spec
    return str(data.get("name")), data.get("fingerprint"), None


def dataset_labels(results: list[dict]) -> dict[tuple, str]:
    """A label per ``dataset_key``: the name where one data condition carries it, else the name with the
    planted noise (``ml-100k (noise add 0.1)``) or, without a record of it, the fingerprint."""
    keys: dict[tuple, dict] = {}
    for result in results:
        keys.setdefault(dataset_key(result), result["dataset"])
    names = [key[0] for key in keys]
    labels = {}
    for key, summary in keys.items():
        if names.count(key[0]) == 1:
            labels[key] = key[0]
        elif summary.get("noise"):
            noise = {k: v for k, v in summary["noise"].items() if k not in ("source",)}
            labels[key] = f"{key[0]} ({record.noise_label(noise).rsplit(', seed', 1)[0]})"
        else:
            labels[key] = f"{key[0]} (fingerprint {str(key[1])[:12]})"
    return labels


def check_same_data(runs: list[Path]) -> None:
    """RunError unless every run shares its data condition (``dataset_key``): per-user values of runs on
    different data are never averaged or paired, whatever the runs' dataset names say. Runs without a
    result.json (per-user files alone) cannot be checked and are let through."""
    first: dict[tuple, tuple[Path, dict]] = {}
    for run in runs:
        if not (Path(run) / record.RESULT_FILE).exists():
            continue
        result = record.read_result(run)
        first.setdefault(dataset_key(result), (run, result))
    if len(first) > 1:
        labels = dataset_labels([result for _, result in first.values()])
        shown = [f"{run} ({labels[key]}, fingerprint {str(result['dataset'].get('fingerprint'))[:12]})"
                 for key, (run, result) in list(first.items())[:2]]
        raise RunError(f"cannot average or pair runs trained on different data: {shown[0]} and {shown[1]}")


def per_user_mean(runs: list[Path], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Users evaluated in every run and their metric averaged over the runs (seeds), which must share
    their data (``check_same_data``)."""
    check_same_data(runs)
    users, values = None, None
    for run in runs:
        run_users, run_values = per_user_values(run, metric)
        if users is None:
            users, values = run_users, run_values.astype(np.float64)
        else:
            users, a, b = align(users, values, run_users, run_values)
            values = a + b
    return users, values / len(runs)


#: the per-user noise-detection AUC (``eval.detection.per_user_auc``), paired like a test metric
DETECTION_AUC = "detection_auc"
#: a sequential model's per-user item localisation precision@3 minus its chance
#: (``sequential.localisation.localisation_per_user``, on data with planted points of interest)
LOCALISATION_GAIN = "localisation_gain"


def per_user_values(run: Path, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(users, values) of one run's per_user.npz: a test metric of the evaluated users, ``detection_auc``
    of the users with planted and clean training interactions, or ``localisation_gain`` of a sequential
    run's test users on data with planted points of interest (RunError when the run recorded none)."""
    z = record.read_per_user(run)
    if metric == DETECTION_AUC:
        if "detection_users" not in z:
            raise RunError(f"{Path(run) / record.PER_USER_FILE}: no per-user detection AUC (the run's denoiser "
                           "gives no judgement, its data has no planted added interactions, or it predates them)")
        return z["detection_users"], z[DETECTION_AUC]
    if metric == LOCALISATION_GAIN:
        if "localisation_users" not in z:
            raise RunError(f"{Path(run) / record.PER_USER_FILE}: no per-user localisation (not a sequential model "
                           "with interest scores, its data has no planted points of interest, or it predates them)")
        return z["localisation_users"], z[LOCALISATION_GAIN]
    if f"test_{metric}" not in z:
        known = sorted(k.removeprefix("test_") for k in z if k.startswith("test_"))
        extra = [m for m, key in ((DETECTION_AUC, "detection_users"), (LOCALISATION_GAIN, "localisation_users"))
                 if key in z]
        raise RunError(f"{Path(run) / record.PER_USER_FILE}: no per-user test {metric!r}; it has "
                       f"{', '.join(known + extra)}")
    return z["users"], z[f"test_{metric}"]


def paired_per_user(runs_a: list[Path], runs_b: list[Path], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Test ``metric`` of two groups of runs (seeds) on one split, user by user: each side's per-user
    values averaged over its runs, over the users every run evaluated → (a float64 [n], b float64 [n])."""
    return _paired_with_users(runs_a, runs_b, metric)[1:]


def _paired_with_users(runs_a: list[Path], runs_b: list[Path], metric: str
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``paired_per_user`` with the users: (users [n], a [n], b [n])."""
    check_same_data([*runs_a, *runs_b])
    users_a, a = per_user_mean(runs_a, metric)
    users_b, b = per_user_mean(runs_b, metric)
    return align(users_a, a, users_b, b)


def paired_per_split(groups_a: list[list[Path]], groups_b: list[list[Path]], metric: str
                     ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``paired_per_user`` on each user split, with the users: groups_a[k] and groups_b[k] are the runs
    (seeds) of the two models on split k. Returns one (users int64 [n_k], a float64 [n_k], b float64 [n_k])
    per split; ``pooled_per_user`` and ``distinct_user_differences`` combine them."""
    if len(groups_a) != len(groups_b):
        raise ValueError(f"one group of runs per split on each side, got {len(groups_a)} and {len(groups_b)}")
    return [_paired_with_users(a, b, metric) for a, b in zip(groups_a, groups_b)]


def pooled_per_user(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The splits' pairs (``paired_per_split``) concatenated: (a, b) float64 [n], one entry per
    (split, user); a user held out in several splits counts once per split."""
    return np.concatenate([a for _, a, _ in pairs]), np.concatenate([b for _, _, b in pairs])


def distinct_user_differences(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                              ) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct user's a − b over the splits' pairs (``paired_per_split``): a user held out in
    several splits gets the mean of its per-split differences, so every user counts once (the
    pooled pairs are not independent when splits share test users). Returns (users int64 [m],
    ascending; difference float64 [m])."""
    users = np.concatenate([u for u, _, _ in pairs])
    diff = np.concatenate([a - b for _, a, b in pairs])
    distinct, index, counts = np.unique(users, return_inverse=True, return_counts=True)
    return distinct, np.bincount(index, weights=diff, minlength=distinct.size) / counts


def compare_runs(runs_a: list[Path], runs_b: list[Path], metrics: list[str]) -> list[dict]:
    """Two groups of runs (seeds of one method each, on the same data) compared on each of ``metrics``
    over the users both evaluated, each side's per-user values averaged over its runs first: one dict per
    metric with ``metric``, ``users`` (n), ``mean_a``, ``mean_b``, ``delta`` (a − b), ``ci_low``/``ci_high``
    (the 95% interval of Δ), ``p_ttest`` and ``p_wilcoxon`` (two-sided, paired)."""
    rows = []
    for metric in metrics:
        a, b = paired_per_user(runs_a, runs_b, metric)
        if a.size == 0:
            raise RunError(f"the runs share no evaluated user for {metric!r}")
        low, high = mean_ci(a - b)
        rows.append({"metric": metric, "users": int(a.size), "mean_a": float(a.mean()), "mean_b": float(b.mean()),
                     "delta": float(a.mean() - b.mean()), "ci_low": low, "ci_high": high,
                     "p_ttest": paired_ttest(a, b)[1], "p_wilcoxon": wilcoxon(a, b)[1]})
    return rows


def significantly_better(runs_a: list[Path], runs_b: list[Path], metric: str, alpha: float = 0.05) -> bool:
    """Whether runs_a beat runs_b on test ``metric``: higher mean and paired t-test p < alpha.

    Users are those evaluated in every run; each side's per-user values are
    averaged over its runs (seeds) first.
    """
    a, b = paired_per_user(runs_a, runs_b, metric)
    return bool(a.mean() > b.mean() and paired_ttest(a, b)[1] < alpha)
