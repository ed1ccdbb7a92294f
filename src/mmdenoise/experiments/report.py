"""Paper-style comparison tables read from run folders (DESIGN §7; GUIDER Table 2 layout).

One table per dataset: a row per denoiser, a column group per backbone with
test Recall@20 and NDCG@20; the best value of each column in bold; ``*`` where
a paired t-test over test users against the same backbone without denoiser
(``none``) gives p < 0.05 and the mean is higher. Runs with several seeds are
averaged; significance then uses the users' per-seed means.
A second table gives the noise-detection ROC-AUC of every run whose dataset
carried planted noise and whose denoiser judges interactions.
Runs are grouped by dataset fingerprint, never by name alone: a noised copy
keeps its source's name, so two fingerprints under one name get two tables,
labelled with their planted noise (or fingerprint); averaging or pairing runs
trained on different data is a RunError.
Both render as Markdown or as LaTeX (booktabs; best in ``\\textbf``, ``$^*$``
for p < 0.05); the report adds PNGs of the training curves and of the
clean-vs-noisy score distributions.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import MMDenoiseError, RunError
from ..eval import paired_ttest
from ..eval.significance import align
from ..training import record
from .tables import Cell, latex, latex_escape, markdown

METRICS = ("recall@20", "ndcg@20")
SHORT = {"recall@20": "R@20", "ndcg@20": "N@20"}


def find_runs(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (itself included) holding a finished run (result.json)."""
    root = Path(root)
    runs = sorted(p.parent for p in root.rglob(record.RESULT_FILE))
    if not runs:
        raise MMDenoiseError(f"no run folders (with {record.RESULT_FILE}) under {root}")
    return runs


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
        z = record.read_per_user(run)
        if users is None:
            users, values = z["users"], z[f"test_{metric}"].astype(np.float64)
        else:
            users, a, b = align(users, values, z["users"], z[f"test_{metric}"])
            values = a + b
    return users, values / len(runs)


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


def significantly_better(runs_a: list[Path], runs_b: list[Path], metric: str, alpha: float = 0.05) -> bool:
    """Whether runs_a beat runs_b on test ``metric``: higher mean and paired t-test p < alpha.

    Users are those evaluated in every run; each side's per-user values are
    averaged over its runs (seeds) first.
    """
    a, b = paired_per_user(runs_a, runs_b, metric)
    return bool(a.mean() > b.mean() and paired_ttest(a, b)[1] < alpha)


def _row_label(run: Path, result: dict) -> str:
    """The denoiser, or the ablation variant an ablation study recorded in the run's trial.json."""
    trial = run / "trial.json"
    if trial.exists():
        variant = json.loads(trial.read_text(encoding="utf-8")).get("params", {}).get("variant")
        if isinstance(variant, str):
            return variant
    return result["denoiser"]


def comparison_cells(run_dirs: list[Path], alpha: float = 0.05) -> list[dict]:
    """The comparison tables as data: per dataset, its models, denoisers (``none`` first) and cells.

    Rows are denoisers (or, for an ablation study's runs, their variant).
    Each table is ``{"dataset", "models", "denoisers", "cells"}`` with
    ``cells[(denoiser, model, metric)] = {"value", "best", "significant"}``
    (absent where that model × denoiser was not run). Renderers:
    :func:`comparison_table` (Markdown) and :func:`comparison_table_latex`.
    """
    groups: dict[tuple, dict[tuple[str, str], list[Path]]] = defaultdict(lambda: defaultdict(list))
    results = [record.read_result(run) for run in run_dirs]
    labels = dataset_labels(results)
    for run, result in zip(run_dirs, results):
        groups[labels[dataset_key(result)]][(result["model"], _row_label(run, result))].append(run)
    tables = []
    for dataset, cells in sorted(groups.items()):
        models = sorted({m for m, _ in cells})
        denoisers = sorted({d for _, d in cells}, key=lambda d: (d != "none", d))
        means = {key: {m: np.mean([record.read_result(r)["test"][m] for r in runs]) for m in METRICS}
                 for key, runs in cells.items()}
        best = {(model, m): max(means[(model, d)][m] for d in denoisers if (model, d) in means)
                for model in models for m in METRICS}
        table = {}
        for den in denoisers:
            for model in models:
                if (model, den) not in cells:
                    continue
                for metric in METRICS:
                    value = means[(model, den)][metric]
                    significant = (den != "none" and (model, "none") in cells
                                   and significantly_better(cells[(model, den)], cells[(model, "none")],
                                                            metric, alpha))
                    table[(den, model, metric)] = {"value": float(value), "best": value == best[(model, metric)],
                                                   "significant": significant}
        tables.append({"dataset": dataset, "models": models, "denoisers": denoisers, "cells": table})
    return tables


def _rows(table: dict):
    """(denoiser, [cell or None per model × metric]) for each row of one ``comparison_cells`` table."""
    for den in table["denoisers"]:
        yield den, [table["cells"].get((den, model, metric)) for model in table["models"] for metric in METRICS]


def comparison_table(run_dirs: list[Path], alpha: float = 0.05) -> str:
    """Markdown tables (one per dataset) of test metrics with bold best and ``*`` significance marks."""
    out = []
    for t in comparison_cells(run_dirs, alpha):
        header = ["denoiser"] + [f"{model} {SHORT[m]}" for model in t["models"] for m in METRICS]
        rows = [[den] + ["–" if cell is None else _value_cell(cell) for cell in cells] for den, cells in _rows(t)]
        out.append(f"**{t['dataset']}** (test, mean over seeds; * p < {alpha} paired t-test vs none)\n\n"
                   + markdown(header, rows, "l" + "r" * (len(header) - 1)))
    return "\n\n".join(out) + "\n"


def _value_cell(cell: dict) -> Cell:
    return Cell(f"{cell['value']:.4f}", bold=cell["best"], marked=cell["significant"])


def comparison_table_latex(run_dirs: list[Path], alpha: float = 0.05) -> str:
    """LaTeX (booktabs) tables like GUIDER Table 2: best of each column in ``\\textbf``, ``$^*$`` after
    a value whose paired t-test against ``none`` gives p < alpha. Needs ``\\usepackage{booktabs}``."""
    out = []
    for t in comparison_cells(run_dirs, alpha):
        models = t["models"]
        header = ["Denoiser"] + [SHORT[m] for _ in models for m in METRICS]
        rows = [[den] + ["--" if cell is None else _value_cell(cell) for cell in cells] for den, cells in _rows(t)]
        caption = (f"{latex_escape(t['dataset'])}: test metrics (mean over seeds). Best in bold; "
                   f"$^*$: $p < {alpha}$, paired t-test against the backbone without denoiser.")
        out.append(latex(header, rows, "l" + "r" * (len(header) - 1), caption=caption,
                         groups=[("", 1)] + [(model, len(METRICS)) for model in models]))
    return "\n\n".join(out) + "\n"


def _detection_rows(run_dirs: list[Path]) -> list[tuple]:
    rows = []
    results = [record.read_result(run) for run in run_dirs]
    labels = dataset_labels(results)
    for result in results:
        if "detection" in result:
            d = result["detection"]
            rows.append((labels[dataset_key(result)], result["model"], result["denoiser"], result["seed"],
                         d["auc"], d["precision@noise"]))
    return sorted(rows)


DETECTION_ALIGN = "lllrrr"


def detection_table(run_dirs: list[Path]) -> str:
    """Markdown table of detection ROC-AUC and precision@|noise| (last epoch) per dataset, model and denoiser."""
    rows = _detection_rows(run_dirs)
    if not rows:
        return ""
    header = ["dataset", "model", "denoiser", "seed", "detection AUC", "precision@noise"]
    return markdown(header, [_detection_cells(row) for row in rows], DETECTION_ALIGN) + "\n"


def _detection_cells(row: tuple) -> list[str]:
    dataset, model, denoiser, seed, auc, precision = row
    return [dataset, model, denoiser, str(seed), f"{auc:.3f}", f"{precision:.3f}"]


def detection_table_latex(run_dirs: list[Path]) -> str:
    """The detection table as a LaTeX (booktabs) tabular; empty when no run has detection metrics."""
    rows = _detection_rows(run_dirs)
    if not rows:
        return ""
    header = ["Dataset", "Model", "Denoiser", "Seed", "AUC", "Precision@noise"]
    caption = (r"Noise detection: ROC-AUC and precision@$|$noise$|$ of each denoiser's per-interaction "
               r"judgement against the planted added interactions (last epoch).")
    return latex(header, [_detection_cells(row) for row in rows], DETECTION_ALIGN, caption=caption) + "\n"


REPORT_FORMATS = ("md", "latex")
TRAINING_CURVES_PNG = "training_curves.png"
SCORES_PNG = "score_distributions.png"


def report_figures(run_dirs: list[Path], folder: Path) -> dict[str, Path]:
    """The report's PNGs in ``folder``: training curves (runs with a metrics.jsonl) and score
    distributions (first seed of each dataset × model × denoiser whose judgement was scored against
    planted added interactions). Returns caption -> path for the figures that could be drawn."""
    from .plots import score_distributions, training_curves
    figures = {}
    curves = training_curves(run_dirs, folder / TRAINING_CURVES_PNG)
    if curves is not None:
        figures["Training curves: validation Recall@20 per epoch"] = curves
    scored = {}
    for run in run_dirs:
        if not (run / record.SCORES_FILE).exists():
            continue
        scores = record.read_scores(run)
        if "noisy" in scores and scores["noisy"].any():
            result = record.read_result(run)
            scored.setdefault((dataset_key(result), result["model"], result["denoiser"]), run)
    if scored:
        figures["Clean vs injected interactions: denoiser scores"] = score_distributions(
            [scored[k] for k in sorted(scored, key=str)], folder / SCORES_PNG)
    return figures


def write_report(root: str | Path, out: str | Path | None = None, fmt: str = "md") -> Path:
    """The report of every run under ``root``: comparison and detection tables, and PNG figures beside it.

    fmt: ``md`` (report.md) or ``latex`` (report.tex: booktabs tables and
    figure environments). out: the report file (default ``root/report.md`` or
    ``root/report.tex``); the PNGs go to its folder.
    """
    from ..io import write_text
    if fmt not in REPORT_FORMATS:
        raise MMDenoiseError(f"unknown report format {fmt!r}; valid formats: {', '.join(REPORT_FORMATS)}")
    runs = find_runs(root)
    path = Path(out) if out is not None else Path(root) / ("report.md" if fmt == "md" else "report.tex")
    figures = report_figures(runs, path.parent)
    if fmt == "md":
        text = "# Results\n\n" + comparison_table(runs)
        detection = detection_table(runs)
        if detection:
            text += "\n## Noise detection (planted added interactions)\n\n" + detection
        if figures:
            text += "\n## Figures\n\n" + "\n\n".join(f"{caption}\n\n![{caption}]({p.name})"
                                                       for caption, p in figures.items()) + "\n"
    else:
        text = ("% mmdenoise report; needs \\usepackage{booktabs} and \\usepackage{graphicx}\n\n"
                + comparison_table_latex(runs))
        detection = detection_table_latex(runs)
        if detection:
            text += "\n" + detection
        for caption, p in figures.items():
            text += ("\n" + r"\begin{figure}[t]" + "\n" + r"\centering" + "\n"
                     + rf"\includegraphics[width=\linewidth]{{{p.name}}}" + "\n"
                     + rf"\caption{{{latex_escape(caption)}}}" + "\n" + r"\end{figure}" + "\n")
    write_text(path, text)
    return path
