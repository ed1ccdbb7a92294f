"""The cells of the claims page computed from the evidence alone: paired comparisons over test users,
verdicts by the stated rule, each run's test means and the compute spent."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from ...eval.pairing import DETECTION_AUC, LOCALISATION_GAIN
from .spec import CHANCE, ClaimsSpec, KIND_METRICS, METRICS, OBJECTIVE
from .runs import EVIDENCE_DIR, SELECTION_JSON, _complete, evidence_folder

#: a cell whose dataset cuts one of its runs (``cut`` in the dataset's entry)
CUT = "cut"
SHORT = {"recall@20": "R@20", "ndcg@20": "N@20", DETECTION_AUC: "AUC", LOCALISATION_GAIN: "P@3 − chance"}
PRIMARY = "recall@20"
#: the method that trains a backbone without any denoiser: the page's table of lifts sets every other against it
ALONE = "none"
ALPHA = 0.05
VERDICTS = ("confirmed", "refuted", "inconclusive")
RULE = (f"A cell is **confirmed** when Δ{SHORT[PRIMARY]} > 0 and the paired t-test on {SHORT[PRIMARY]} gives "
        f"p < {ALPHA}, **refuted** when Δ{SHORT[PRIMARY]} < 0 and p < {ALPHA}, and **inconclusive** otherwise. "
        f"{SHORT['ndcg@20']} is shown with its own p and does not enter the verdict. A claim holds on a dataset "
        "(confirmed) when every one of its comparisons there is confirmed; it is refuted there when any "
        "comparison is refuted; otherwise it is inconclusive, or pending while a comparison has no evidence yet. "
        "p-values are two-sided and not corrected for the number of comparisons (the section on multiple "
        "comparisons adjusts them); brackets give the 95% confidence interval of the Δ that decides the verdict. "
        "A `detects` cell applies the same rule to each user's noise-detection AUC (the judge's ranking of that "
        "user's training interactions against the planted ones) on one backbone against another, and a `localises` "
        "cell to each "
        "test user's item-localisation precision@3 minus its chance (the share of planted points of interest in "
        "the user's history window), against 0. Where a sequential model runs on several user splits, each split's "
        "test users are paired within it (seeds averaged), and a user held out in more than one split counts "
        "once, with the mean of its differences.")


def compare_runs(runs_a: Sequence[Path], runs_b: Sequence[Path], metrics: Sequence[str] = METRICS) -> dict:
    """One cell's numbers from two groups of run (or evidence) folders, one per seed: users evaluated
    in every run, each user's metrics averaged over the seeds, Δ = mean(A − B) and the two-sided paired
    t-test's p per metric (``eval.pairing.paired_per_user``, ``eval.significance.paired_ttest``), and the
    95% confidence interval of Δ (``eval.significance.mean_ci``); ``detection_auc``: the users with a
    per-user detection AUC in every run."""
    from ...eval.pairing import paired_per_user
    from ...eval.significance import mean_ci, paired_ttest
    delta, p, ci, n = {}, {}, {}, 0
    for metric in metrics:
        a, b = paired_per_user(list(runs_a), list(runs_b), metric)
        n = int(a.size)
        delta[metric] = float(a.mean() - b.mean()) if n else float("nan")
        p[metric] = paired_ttest(a, b)[1]
        ci[metric] = list(mean_ci(a - b))
    return {"n_users": n, "delta": delta, "p": p, "ci": ci}


def by_split(folders: Sequence[Path], replicates: Sequence[tuple[int | None, int]]) -> list[list[Path]]:
    """The folders of one side of a cell (one per replicate, in order) grouped by user split."""
    groups: dict[int | None, list[Path]] = {}
    for folder, (split, _) in zip(folders, replicates):
        groups.setdefault(split, []).append(Path(folder))
    return list(groups.values())


def compare_groups(groups_a: Sequence[Sequence[Path]], groups_b: Sequence[Sequence[Path]] | None,
                   metrics: Sequence[str]) -> dict:
    """One cell's numbers from two sides grouped by user split (:func:`by_split`); ``groups_b`` None: side
    A's values against 0 (``localises``: each user's gain over chance). One split on both sides is
    :func:`compare_runs`. Otherwise each split pairs its users (seeds averaged), a user held out in
    several splits counts once with the mean of its differences (``eval.pairing.distinct_user_differences``),
    Δ is the mean of those differences, p the two-sided t-test of them against 0 and ``ci`` the 95%
    confidence interval of Δ."""
    import numpy as np

    from ...eval.pairing import distinct_user_differences, paired_per_split, per_user_mean
    from ...eval.significance import mean_ci, paired_ttest
    if groups_b is not None and len(groups_a) == 1 and len(groups_b) == 1:
        return compare_runs(groups_a[0], groups_b[0], metrics)
    delta, p, ci, n = {}, {}, {}, 0
    for metric in metrics:
        if groups_b is None:
            pairs = []
            for group in groups_a:
                users, values = per_user_mean(list(group), metric)
                pairs.append((users, values, np.zeros_like(values)))
        else:
            pairs = paired_per_split([list(g) for g in groups_a], [list(g) for g in groups_b], metric)
        _, diff = distinct_user_differences(pairs)
        n = int(diff.size)
        delta[metric] = float(diff.mean()) if n else float("nan")
        p[metric] = paired_ttest(diff, np.zeros_like(diff))[1]
        ci[metric] = list(mean_ci(diff))
    return {"n_users": n, "delta": delta, "p": p, "ci": ci}


def verdict(delta: float, p: float) -> str:
    """The rule stated once (:data:`RULE`): confirmed, refuted or inconclusive."""
    if p < ALPHA and delta > 0:
        return "confirmed"
    if p < ALPHA and delta < 0:
        return "refuted"
    return "inconclusive"


def claim_verdict(verdicts: Sequence[str]) -> str:
    """A claim on one dataset from its comparisons' verdicts (``pending`` for one without evidence, ``cut``
    for one its dataset does not run: the others decide; ``cut`` when all are)."""
    verdicts = [v for v in verdicts if v != CUT]
    if not verdicts:
        return CUT
    if "refuted" in verdicts:
        return "refuted"
    if "pending" in verdicts:
        return "pending"
    return "confirmed" if all(v == "confirmed" for v in verdicts) else "inconclusive"


def _relative(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out)).as_posix()


def page_data(spec: ClaimsSpec, out: Path, command: str, check: str) -> dict:
    """Everything claims.json holds and the page shows, from the spec and the evidence under ``out``;
    ``command`` regenerates it and ``check`` recomputes it (as the page prints them)."""
    out = Path(out)
    tuning = []
    for run in spec.runs():
        path = evidence_folder(out, run) / SELECTION_JSON
        selection = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        source = spec.datasets[run[0]].tune_from
        tuning.append({"dataset": run[0], "backbone": run[1], "method": run[2], "tuned_on": source,
                       "selection_of": spec.methods[run[2]].selection_of,
                       "planned": 0 if source else spec.trials_planned(run[2]),
                       "used": selection["used"] if selection else 0,
                       "selected": selection["selected"]["params"] if selection else None,
                       "valid": selection["selected"]["objective"] if selection else None})
    claims, memo = [], {}
    for claim in spec.claims:
        cells = []
        metrics = KIND_METRICS[claim.kind]
        for a, b, backbone, backbone_b in claim.comparisons():
            for dataset in claim.datasets:
                replicates = spec.replicates(dataset, backbone)
                runs_a = _complete(out, (dataset, backbone, a), replicates)
                runs_b = [] if b == CHANCE else _complete(out, (dataset, backbone_b, b), replicates)
                cell = {"method": a, "versus": b, "backbone": backbone, "dataset": dataset,
                        **({"against": backbone_b} if claim.kind == "detects" else {})}
                if spec.is_cut((dataset, backbone, a)) or (b != CHANCE and spec.is_cut((dataset, backbone_b, b))):
                    cells.append({**cell, "status": CUT})
                    continue
                if runs_a is None or runs_b is None:
                    cells.append({**cell, "status": "pending"})
                    continue
                cells.append(done_cell(cell, runs_a, runs_b, replicates, metrics, out, memo))
        claims.append({"id": claim.id, "claim": claim.text, "source": claim.source, "kind": claim.kind,
                       "method": list(claim.methods), "versus": list(claim.versus),
                       "backbones": list(claim.backbones), "datasets": list(claim.datasets),
                       **({"against": list(claim.against)} if claim.kind == "detects" else {}), "cells": cells})
    return {
        "title": spec.title, "folder": out.name, "page": f"../{out.name}.md",
        "command": command, "check": check, "rule": RULE, "alpha": ALPHA,
        "primary": PRIMARY, "metrics": list(METRICS),
        "protocol": {"objective": f"valid {OBJECTIVE.metric}", "budget": spec.budget, "seeds": spec.seeds,
                     "tune_seed": spec.tune_seed, "search_seed": spec.search_seed,
                     "set": [[k, v] for k, v in spec.overrides]},
        "datasets": [{"name": d.name, "source": d.shown, "noise": d.noise, "set": [[k, v] for k, v in d.overrides],
                      "tune_from": d.tune_from, "seeds": spec.seeds_of(d.name),
                      **({"splits": list(d.splits)} if d.splits else {}),
                      **({"cut": [list(pair) for pair in d.cut]} if d.cut else {}),
                      **({"why": d.why} if d.why else {})} for d in spec.datasets.values()],
        "methods": [{"name": m.name, "denoiser": m.denoiser, "grid": m.grid, "grid_size": m.grid_size,
                     "trials": spec.trials_planned(m.name), "selection_of": m.selection_of,
                     "set": [[k, v] for k, v in m.overrides], **({"model": m.model} if m.model else {})}
                    for m in spec.methods.values()],
        "tuning": tuning, "claims": claims, "results": run_results(spec, out),
        "against_alone": against_alone(spec, out, memo), "compute": compute_spent(spec, out)}


def comparison_numbers(runs_a: Sequence[Path], runs_b: Sequence[Path], replicates: Sequence[tuple[int | None, int]],
                       metrics: Sequence[str], memo: dict | None = None) -> tuple[dict, list[float]]:
    """One comparison from the evidence folders of its two sides, one per replicate (``runs_b`` empty: side
    A against 0, a cell against chance): (:func:`compare_groups`'s Δ, p and interval per metric, the Δ of
    ``metrics[0]`` at each replicate). ``memo``: a dict kept across calls, so that the same comparison on
    the same metrics (a claim's cell repeated by another claim, or by the table against the backbone
    alone) reads its evidence once."""
    key = (tuple(map(str, runs_a)), tuple(map(str, runs_b)), tuple(metrics))
    if memo is None or key not in memo:
        against = by_split(runs_b, replicates) if runs_b else None
        numbers = (compare_groups(by_split(runs_a, replicates), against, metrics),
                   replicate_deltas(runs_a, runs_b or None, metrics[0]))
        if memo is None:
            return numbers
        memo[key] = numbers
    return memo[key]


def done_cell(cell: dict, runs_a: Sequence[Path], runs_b: Sequence[Path],
              replicates: Sequence[tuple[int | None, int]], metrics: Sequence[str], out: Path,
              memo: dict | None = None) -> dict:
    """``cell`` (method, versus, backbone, dataset) with its numbers (:func:`comparison_numbers`; ``runs_b``
    empty when it is against chance), the verdict by the rule on the first metric, and the evidence paths
    relative to ``out``."""
    numbers, deltas = comparison_numbers(runs_a, runs_b, replicates, metrics, memo)
    return {**cell, "status": "done", **numbers, "seed_deltas": deltas,
            "verdict": verdict(numbers["delta"][metrics[0]], numbers["p"][metrics[0]]),
            "evidence": {"a": [_relative(f, out) for f in runs_a], "b": [_relative(f, out) for f in runs_b]}}


def against_alone(spec: ClaimsSpec, out: Path, memo: dict | None = None) -> list[dict]:
    """Every method against its backbone alone (:data:`ALONE`) on the same dataset, a cell each
    (:func:`done_cell`, on :data:`METRICS`), wherever both have evidence at all their replicates: which
    method lifts which backbone, whether or not a claim compares the two. Not claims: they stay out of
    the multiple-comparison screen."""
    runs = set(spec.runs())
    cells = []
    for dataset, backbone, method in spec.runs():
        if method == ALONE or (dataset, backbone, ALONE) not in runs:
            continue
        replicates = spec.replicates(dataset, backbone)
        runs_a = _complete(out, (dataset, backbone, method), replicates)
        runs_b = _complete(out, (dataset, backbone, ALONE), replicates)
        if runs_a is not None and runs_b is not None:
            cells.append(done_cell({"method": method, "versus": ALONE, "backbone": backbone, "dataset": dataset},
                                   runs_a, runs_b, replicates, METRICS, out, memo))
    return cells


def run_results(spec: ClaimsSpec, out: Path) -> list[dict]:
    """Every (dataset, backbone, method) with evidence at all its replicates: its test metrics, each user's
    value averaged over the seeds (a user held out on several user splits counts once), then over users
    (:func:`compare_groups` against 0), with the evidence folders they come from."""
    results = []
    for run in spec.runs():
        replicates = spec.replicates(run[0], run[1])
        folders = _complete(out, run, replicates)
        if folders is None:
            continue
        numbers = run_means(folders, replicates)
        results.append({"dataset": run[0], "backbone": run[1], "method": run[2], "n_users": numbers["n_users"],
                        "mean": numbers["delta"], "seed_sd": seed_spread(folders, replicates),
                        "best_epochs": best_epochs(folders), "evidence": [_relative(f, out) for f in folders]})
    return results


def replicate_deltas(runs_a: Sequence[Path], runs_b: Sequence[Path] | None, metric: str) -> list[float]:
    """Δ ``metric`` of a cell at each replicate (seed, or user split and seed) alone, in the evidence order:
    run A's i-th folder against run B's i-th (the same seed: the same initialisation and negatives as far as
    the two methods share them) over their common users, or against 0 (``runs_b`` None). Their spread is
    the cell's seed-to-seed variation, which the paired test over users does not see."""
    from ...eval.pairing import paired_per_user, per_user_mean
    if runs_b is None:
        return [float(per_user_mean([a], metric)[1].mean()) for a in runs_a]
    return [float(x.mean() - y.mean()) for x, y in (paired_per_user([a], [b], metric)
                                                    for a, b in zip(runs_a, runs_b))]


def best_epochs(folders: Sequence[Path]) -> list[int]:
    """The epoch (0-based) of each evidence folder's best validation, as its result.json records it."""
    from ...training import record
    return [int(record.read_result(folder)["best_epoch"]) for folder in folders]


def seed_spread(folders: Sequence[Path], replicates: Sequence[tuple[int | None, int]]) -> float | None:
    """How much a run's test R@20 moves from seed to seed: the standard deviation (n − 1) of its per-seed
    means over users, within each user split, pooled over splits as the root of their mean variance;
    None when no split has two seeds. Training randomness, which the paired test over users (models
    fixed) does not see."""
    import numpy as np

    from ...eval.pairing import per_user_mean
    variances = []
    for group in by_split(folders, replicates):
        if len(group) > 1:
            means = [per_user_mean([folder], PRIMARY)[1].mean() for folder in group]
            variances.append(float(np.var(means, ddof=1)))
    return float(np.sqrt(np.mean(variances))) if variances else None


def run_means(folders: Sequence[Path], replicates: Sequence[tuple[int | None, int]]) -> dict:
    """One run's test metrics from its evidence folders (one per replicate): :func:`compare_groups` of
    the folders against 0, so ``delta`` holds each metric's mean over users of the seed-averaged value."""
    return compare_groups(by_split(folders, replicates), None, METRICS)


def _evidence_names(out: Path, run: tuple[str, str, str], replicates: Sequence[tuple[int | None, int]]
                    ) -> list[str]:
    """The evidence folders of ``run``, one per (split, seed), as claims.json lists them (relative to out)."""
    return [_relative(evidence_folder(out, run, seed, split), out) for split, seed in replicates]


def compute_spent(spec: ClaimsSpec, out: Path) -> list[dict]:
    """Per dataset, the runs behind its evidence and their hours (:func:`run_seconds`): the tuning trials
    its selection.json files list (none for a ``tune_from`` dataset) and the final runs of its evidence,
    with how many of those ran on a GPU (their evidence records ``device: cuda...``; evidence written
    before the device was recorded counts as not)."""
    from ...training import record
    rows = []
    for name in spec.datasets:
        folder = Path(out) / EVIDENCE_DIR / name
        tuning = [t.get("seconds") for path in sorted(folder.glob(f"*/*/{SELECTION_JSON}"))
                  for t in json.loads(path.read_text(encoding="utf-8"))["trials"]]
        results = [json.loads(path.read_text(encoding="utf-8"))
                   for path in sorted(folder.glob(f"*/*/*/{record.RESULT_FILE}"))]
        final = [r.get("seconds") for r in results]
        rows.append({"dataset": name, "tuning_runs": len(tuning), "final_runs": len(final),
                     "final_runs_on_gpu": sum(str(r.get("device") or "").startswith("cuda") for r in results),
                     "tuning_hours": sum(x for x in tuning if x is not None) / 3600,
                     "final_hours": sum(x for x in final if x is not None) / 3600,
                     "unmeasured": sum(x is None for x in (*tuning, *final))})
    return rows
