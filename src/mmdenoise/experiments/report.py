"""Paper-style comparison tables read from run folders (GUIDER Table 2 layout).

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

from ..errors import MMDenoiseError
from ..eval.pairing import dataset_key, dataset_labels, significantly_better
from ..training import record
from .tables import Cell, latex, latex_escape, markdown

METRICS = ("recall@20", "ndcg@20")
SHORT = {"recall@20": "R@20", "ndcg@20": "N@20"}


def find_runs(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (itself included) holding a finished run (result.json)."""
    root = Path(root)
    if not root.is_dir():
        raise MMDenoiseError(f"{root}: no such folder (give a run folder or a folder of runs)")
    runs = sorted(p.parent for p in root.rglob(record.RESULT_FILE))
    if not runs:
        raise MMDenoiseError(f"no run folders (with {record.RESULT_FILE}) under {root}")
    return runs


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
        stars = f"; * p < {alpha} paired t-test vs none" if "none" in t["denoisers"] else ""
        out.append(f"**{t['dataset']}** (test, mean over seeds{stars})\n\n"
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
        stars = (f"; $^*$: $p < {alpha}$, paired t-test against the backbone without denoiser"
                 if "none" in t["denoisers"] else "")
        caption = f"{latex_escape(t['dataset'])}: test metrics (mean over seeds). Best in bold{stars}."
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


#: epochs (1-based) shown by the per-epoch table when a run reached them
CURVE_EPOCHS = (1, 10, 20, 40, 60, 90, 120, 150, 180, 240, 300)


def curve_cells(run_dirs: list[Path], metric: str = "recall@20",
                epochs: tuple[int, ...] = CURVE_EPOCHS) -> list[dict]:
    """Validation ``metric`` and detection AUC along training, mean over the seeds of each (dataset, model,
    row) that judged planted noise (from metrics.jsonl).

    Returns one table per dataset label: ``{"dataset", "rows": [(model, label)], "epochs": [e],
    "cells": {(model, label, e): (mean metric, mean AUC or None, runs at e, runs)}}``; an epoch is listed
    when some group reached it. Groups with no epoch-wise detection are left out (nothing to set beside).
    """
    results = [record.read_result(run) for run in run_dirs]
    labels = dataset_labels(results)
    groups: dict[str, dict[tuple[str, str], list[list[dict]]]] = defaultdict(lambda: defaultdict(list))
    for run, result in zip(run_dirs, results):
        history = [r for r in record.read_metrics(run) if metric in r.get("valid", {})]
        groups[labels[dataset_key(result)]][(result["model"], _row_label(run, result))].append(history)
    tables = []
    for dataset, rows in sorted(groups.items()):
        if not any("detection" in r for histories in rows.values() for h in histories for r in h):
            continue
        cells = {}
        for (model, label), histories in rows.items():
            by_epoch = [{r["epoch"] + 1: r for r in h} for h in histories]
            for e in epochs:
                reached = [h[e] for h in by_epoch if e in h]
                if not reached:
                    continue
                aucs = [r["detection"]["auc"] for r in reached if "detection" in r]
                cells[(model, label, e)] = (float(np.mean([r["valid"][metric] for r in reached])),
                                            float(np.mean(aucs)) if aucs else None, len(reached), len(histories))
        order = sorted(rows, key=lambda k: (k[0], k[1] != "none", k[1]))
        tables.append({"dataset": dataset, "rows": order, "epochs": sorted({e for _, _, e in cells}),
                       "cells": cells})
    return tables


def _curve_cell(cell: tuple | None) -> str:
    if cell is None:
        return "–"
    value, auc, reached, runs = cell
    text = f"{value:.4f}" + (f" / {auc:.3f}" if auc is not None else "")
    return text + (f" ({reached} of {runs})" if reached < runs else "")


def curve_table(run_dirs: list[Path], metric: str = "recall@20") -> str:
    """Markdown: per dataset, an epoch per row and a (model, denoiser) per column, each cell "validation
    ``metric`` / detection AUC" (mean over seeds; "(k of n)" when only k of the n seeds reached the epoch).
    Empty when no run judged planted noise epoch by epoch."""
    out = []
    for t in curve_cells(run_dirs, metric):
        header = ["epoch"] + [f"{model} + {label}" for model, label in t["rows"]]
        rows = [[str(e)] + [_curve_cell(t["cells"].get((model, label, e))) for model, label in t["rows"]]
                for e in t["epochs"]]
        out.append(f"**{t['dataset']}** (validation {SHORT.get(metric, metric)} / detection AUC, mean over "
                   "seeds)\n\n" + markdown(header, rows, "r" * len(header)))
    return "\n\n".join(out) + "\n" if out else ""


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
            curves = curve_table(runs)
            if curves:
                text += ("\nAlong training (compare two-valued judgements, such as GUIDER's clean/noisy partition, "
                         "with each other, and rankings, such as T-CE's loss, with each other: the AUC counts "
                         "every tie as half):\n\n" + curves)
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
