"""Demure's studies: the sensitivity to the augmentation rates γ_i/γ_m and to the number J of
augmented pairs (paper Tables 3–4), each grid point against the base model on the same user split;
and the comparison of models over several user splits.

Both run their runs as trials of the one runner of every study
(``experiments.runner``: a pool of processes or Ray Tune, clash checks,
finished runs skipped and partial ones resumed), each in the folder these
studies always used (``base-s0``, ``demure-<point>-s0``,
``<model>-split<k>-s<seed>``; folders written before they had a
``trial.json`` are recognised by their ``config.yaml``).

``sensitivity_study`` trains the base model and Demure at every grid point
(one run folder each under ``out``; finished runs are reused, so an
interrupted study resumes), then writes ``sensitivity-<grid>.md`` and
``.json``: validation and test Recall/NDCG@20 and @50 per point, and the
paired t-test p-value of its test Recall@20 against the base model's over the
common test users (with several seeds: the users' per-seed means). The
point to pick is the best on **validation**, marked in the table.

``split_study`` trains each model on several user splits
(``sequence.split_seed``) and compares every model with the first, per split
and pooled: each (split, test user) is one paired observation. One split of
ml-100k holds 94 test users, too few to show a gain below about 0.025
Recall@20; three splits give 282 pairs. A user held out in several splits
counts once per split, so the pooled test is slightly optimistic; the table
therefore also tests Recall@20 with each distinct user counted once (its
differences averaged over the splits that hold it).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..config import Override, override_pairs
from ..errors import ConfigError, did_you_mean
from ..eval.pairing import distinct_user_differences, paired_per_split, paired_per_user, pooled_per_user
from ..eval.significance import paired_ttest
from ..experiments.runner import Objective, make_trial, run_trials, trial_defaults, trial_status
from ..experiments.study import check_task, parse_seeds, raise_if_failed, validate_cells
from ..experiments.tables import markdown
from ..io import write_json, write_text
from ..training import record

#: Table 3: (γ_i + γ_m, γ_m)
GAMMA_POINTS: tuple[tuple[float, float], ...] = ((0.8, 0.6), (0.8, 0.4), (0.8, 0.2), (0.6, 0.4), (0.6, 0.3),
                                                 (0.6, 0.2), (0.4, 0.3), (0.4, 0.2), (0.4, 0.1))
#: Table 4: J
J_POINTS: tuple[int, ...] = (1, 2, 4)
METRICS = ("recall@20", "ndcg@20", "recall@50", "ndcg@50")


#: what the runner records of each run (the studies select nothing: their tables show every run)
OBJECTIVE = Objective()


def grid_points(grid: str) -> list[tuple[str, dict, list[Override]]]:
    """(label, shown columns, overrides) of every point of the ``gamma`` or ``j`` grid."""
    if grid == "gamma":
        return [(f"gi{round(total - gm, 2)}-gm{gm}", {"gamma_i+gamma_m": total, "gamma_m": gm},
                 [("gamma_i", round(total - gm, 2)), ("gamma_m", gm)]) for total, gm in GAMMA_POINTS]
    if grid == "j":
        return [(f"j{j}", {"J": j}, [("n_views", j)]) for j in J_POINTS]
    raise ConfigError(f"unknown sensitivity grid {grid!r}{did_you_mean(grid, ['gamma', 'j'])}; grids: gamma "
                      "(Table 3), j (Table 4)")


def _dataset_arg(dataset: Any) -> str:
    """The dataset as a trial's config names it: a folder by its absolute path, a name as it is."""
    from ..data import Dataset
    if isinstance(dataset, Dataset):
        dataset = dataset.path if dataset.path is not None else dataset.name
    path = Path(str(dataset)).expanduser()
    return str(path.resolve()) if path.is_dir() else str(dataset)


def _trial(dataset: str, model: str, seed: int, name: str, params: dict, overrides: Sequence[Override]) -> dict:
    """One run of a study as a trial of the runner, in the folder ``name`` the study always gave it."""
    return make_trial(params, {"dataset": dataset},
                      trial_defaults(OBJECTIVE) + [("model", model), ("seed", seed), *overrides], name=name)


def _finished_runs(out: Path, trials: list[dict], train: bool, **runner: Any) -> set[str]:
    """The names of the finished trials: every one after running them (``train``; a failed run is a
    TrainingError once all have run), else those already finished (nothing trains)."""
    trials = validate_cells(trials)
    if train:
        raise_if_failed(run_trials(out, trials, OBJECTIVE, **runner))
        return {t["name"] for t in trials}
    return {t["name"] for t in trials if trial_status(out / t["name"], t) == "finished"}


def sensitivity_study(dataset, grid: str, out: str | Path, *, seeds: int | str | Sequence[int] = (0,),
                      overrides: Sequence[str | Override] = (), train: bool = True, backend: str = "local",
                      workers: int = 1, address: str | None = None,
                      on_result: Callable[[dict], None] | None = None) -> Path:
    """Train the base model and Demure over ``grid`` (``gamma`` or ``j``) and write the table; returns
    the Markdown file. ``overrides`` ((key, value) pairs or ``key=value`` text) apply to every run (e.g.
    ``train.lr=0.003``); backend, workers, address, on_result: as for every study (``run_trials``).

    With ``train=False`` nothing is trained: the table is written from the
    finished runs under ``out`` and a point with any seed unfinished is listed
    as "not run" (the base model's runs must be finished).
    """
    out, seeds, overrides, data = Path(out), parse_seeds(seeds), override_pairs(overrides), _dataset_arg(dataset)
    points = [("base", "base", {}, []), *((f"demure-{label}", label, columns, extra)
                                          for label, columns, extra in grid_points(grid))]
    trials = {(prefix, s): _trial(data, "base" if prefix == "base" else "demure", s, f"{prefix}-s{s}",
                                  {"point": label, "seed": s}, [*overrides, *extra])
              for prefix, label, _, extra in points for s in seeds}
    done = _finished_runs(out, list(trials.values()), train, backend=backend, workers=workers, address=address,
                          on_result=on_result)

    def runs(prefix: str) -> list[Path] | None:
        names = [trials[(prefix, s)]["name"] for s in seeds]
        return [out / name for name in names] if all(name in done for name in names) else None

    base = runs("base")
    if base is None:
        raise ConfigError(f"sensitivity study in {out}: the base model's runs (base-s<seed>) are not finished; "
                          "run the study with training first")
    rows = [{"label": label, "columns": columns, "runs": runs(prefix)} for prefix, label, columns, _ in points]
    for row in rows:
        if row["runs"] is None:
            continue
        results = [record.read_result(r) for r in row["runs"]]
        for split in ("valid", "test"):
            row[split] = {m: _mean(results, split, m) for m in METRICS}
        row["best_epoch"], row["seconds_per_epoch"] = _mean(results, "best_epoch"), _mean(results, "seconds_per_epoch")
        if row["label"] != "base":
            a, b = paired_per_user(row["runs"], base, "recall@20")
            row["p_vs_base"] = paired_ttest(a, b)[1]
    finished = [row for row in rows[1:] if row["runs"] is not None]
    best = max(finished, key=lambda r: r["valid"]["recall@20"])["label"] if finished else None
    path = out / f"sensitivity-{grid}.md"
    write_text(path, _sensitivity_table(rows, best, grid, dataset, seeds))
    write_json(out / f"sensitivity-{grid}.json",
               {"grid": grid, "dataset": str(dataset), "seeds": list(seeds), "best_valid": best,
                "rows": [{**row, "runs": None if row["runs"] is None else [str(r) for r in row["runs"]]}
                         for row in rows]})
    return path


def _sensitivity_table(rows: list[dict], best: str | None, grid: str, dataset, seeds: Sequence[int]) -> str:
    """The Markdown table of ``sensitivity_study``: the base model, then one row per grid point."""
    keys = list(rows[1]["columns"])
    header = keys + ["valid R@20", "test R@20", "test N@20", "test R@50", "test N@50", "p vs base",
                     "best epoch", "s/epoch"]
    cells = []
    for row in rows:
        shown = [str(row["columns"][k]) for k in keys] if row["columns"] else ["base"] + [""] * (len(keys) - 1)
        if row["runs"] is None:
            cells.append(shown + ["not run"] + [""] * (len(header) - len(keys) - 1))
            continue
        mark = " ←" if row["label"] == best else ""
        p = f"{row['p_vs_base']:.3g}" if "p_vs_base" in row else "–"
        cells.append(shown + [f"{row['valid']['recall@20']:.4f}{mark}"] + [f"{row['test'][m]:.4f}" for m in METRICS]
                     + [p, f"{row['best_epoch']:.3g}", f"{row['seconds_per_epoch']:.1f}"])
    note = (f"\nDemure sensitivity ({grid}) on {dataset}, seeds {list(seeds)}; ← = best validation "
            "Recall@20 (the point to select); p = paired t-test of test Recall@20 vs base over test users; "
            "best epoch and s/epoch are means over the seeds.\n")
    return markdown(header, cells, "l" * len(header)) + "\n" + note


def split_study(dataset, models: Sequence[str], out: str | Path, *, splits: int | str | Sequence[int] = (0, 1, 2),
                seeds: int | str | Sequence[int] = (0,), overrides: Sequence[str | Override] = (),
                backend: str = "local", workers: int = 1, address: str | None = None,
                on_result: Callable[[dict], None] | None = None) -> Path:
    """Train ``models`` (``SEQUENTIAL_MODELS`` names, the first the reference) with every training seed
    on every user split and write ``splits.md`` and ``.json`` under ``out``; returns the Markdown file.

    Per split: validation/test metrics and best epoch (means over seeds), and
    the test Recall@20 difference to the reference with its paired t-test over
    that split's test users (each user's value averaged over the seeds).
    Pooled: the mean over all (split, test user) pairs and the paired t-test of
    each metric against the reference over those pairs, and over the distinct
    users (``distinct_user_differences``: one mean difference per user, tested
    against zero; ``n_users``, ``p_users_<metric>`` in the JSON). Finished runs
    (``<model>-split<k>-s<seed>``) are reused, so a rerun resumes. overrides, backend, workers,
    address, on_result: as in :func:`sensitivity_study`.
    """
    models, splits, seeds = list(models), parse_seeds(splits, "--splits"), parse_seeds(seeds)
    if len(models) < 2 or len(set(models)) != len(models):
        raise ConfigError(f"split study: give the reference model and at least one other, each once; got {models}")
    for name, values in (("split seeds", splits), ("training seeds", seeds)):
        if not values or len(set(values)) != len(values):
            raise ConfigError(f"split study: give distinct {name}, got {values}")
    check_task(models, "sequential", "split study")
    out, overrides, data = Path(out), override_pairs(overrides), _dataset_arg(dataset)
    trials = [_trial(data, m, s, f"{m}-split{k}-s{s}", {"model": m, "split": k, "seed": s},
                     [*overrides, ("sequence.split_seed", k)]) for m in models for k in splits for s in seeds]
    _finished_runs(out, trials, True, backend=backend, workers=workers, address=address, on_result=on_result)
    runs = {m: [[out / f"{m}-split{k}-s{s}" for s in seeds] for k in splits] for m in models}
    per_split, pooled = _compare_over_splits(runs, splits, models[0])
    note = (f"\nModels on {dataset} over user splits {splits}, training seeds {seeds} (per-user values "
            f"averaged over the seeds); Δ and p per split: paired t-test of test Recall@20 against "
            f"{models[0]} over that split's test users.\n")
    path = out / "splits.md"
    write_text(path, _split_tables(per_split, pooled, splits, models[0]) + note)
    write_json(out / "splits.json", {"dataset": str(dataset), "models": models, "reference": models[0],
                                     "splits": splits, "seeds": seeds, "per_split": per_split, "pooled": pooled})
    return path


def _compare_over_splits(runs: dict[str, list[list[Path]]], splits: list[int], reference: str
                         ) -> tuple[list[dict], list[dict]]:
    """Rows of the per-split and the pooled table; ``runs[model][j]`` are the seeds' runs on ``splits[j]``."""
    per_split, pooled = [], []
    for model, groups in runs.items():
        split_results = [[record.read_result(r) for r in group] for group in groups]
        pairs = {metric: paired_per_split(groups, runs[reference], metric) for metric in METRICS}
        for j, (group, results) in enumerate(zip(groups, split_results)):
            row = {"split": splits[j], "model": model, "runs": [str(r) for r in group],
                   "best_epoch": _mean(results, "best_epoch"),
                   "valid_recall@20": _mean(results, "valid", "recall@20"),
                   **{k: _mean(results, "test", k) for k in METRICS}}
            if model != reference:
                _, a, b = pairs["recall@20"][j]
                row.update(delta=float(a.mean() - b.mean()), p=paired_ttest(a, b)[1])
            per_split.append(row)
        row = {"model": model, "valid_recall@20": float(np.mean([_mean(r, "valid", "recall@20")
                                                                 for r in split_results]))}
        for metric in METRICS:
            a, b = pooled_per_user(pairs[metric])
            row[metric], row["n_pairs"] = float(a.mean()), int(a.size)
            if model != reference:
                row[f"p_{metric}"] = paired_ttest(a, b)[1]
                users, diff = distinct_user_differences(pairs[metric])
                row["n_users"], row[f"p_users_{metric}"] = int(users.size), paired_ttest(diff, np.zeros_like(diff))[1]
        pooled.append(row)
    return per_split, pooled


def _mean(results: list[dict], *keys: str) -> float:
    """The mean over the runs' results (seeds) of ``result[keys[0]][keys[1]]...``, e.g. ``("test", "recall@20")``
    or ``("best_epoch",)``."""
    values = []
    for result in results:
        value = result
        for key in keys:
            value = value[key]
        values.append(value)
    return float(np.mean(values))


def _split_tables(per_split: list[dict], pooled: list[dict], splits: list[int], reference: str) -> str:
    """The two Markdown tables of ``split_study``."""
    header = ["split", "model", "valid R@20", "R@20", "N@20", "R@50", "N@50", "best epoch", "Δ R@20 (p)"]
    rows = [[str(row["split"]), row["model"], f"{row['valid_recall@20']:.4f}", *(f"{row[k]:.4f}" for k in METRICS),
             f"{row['best_epoch']:.3g}", f"{row['delta']:+.4f} ({row['p']:.2g})" if "p" in row else ""]
            for row in sorted(per_split, key=lambda r: r["split"])]
    n_users = next((row["n_users"] for row in pooled if "n_users" in row), 0)
    note = (f"Pooled over splits {splits} ({pooled[0]['n_pairs']} (split, test user) pairs); p = paired "
            f"t-test against {reference}; last column: the same for R@20 with each of the {n_users} distinct "
            "users counted once (its differences averaged over the splits that hold it):")
    pooled_header = ["model", "mean valid R@20", "R@20", "N@20", "R@50", "N@50", "R@20 p, users once"]
    pooled_rows = [[row["model"], f"{row['valid_recall@20']:.4f}",
                    *(f"{row[k]:.4f}" + (f" (p = {row[f'p_{k}']:.2g})" if f"p_{k}" in row else "") for k in METRICS),
                    f"{row['p_users_recall@20']:.2g}" if "p_users_recall@20" in row else ""] for row in pooled]
    return "\n\n".join([markdown(header, rows, "rl" + "r" * 7), note,
                        markdown(pooled_header, pooled_rows, "l" + "r" * 6)]) + "\n"


def read_table(path: str | Path) -> dict:
    """The JSON written next to a sensitivity table."""
    return json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))
