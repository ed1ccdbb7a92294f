"""Paper-style comparison tables read from run folders (DESIGN §7; GUIDER Table 2 layout).

One table per dataset: a row per denoiser, a column group per backbone with
test Recall@20 and NDCG@20; the best value of each column in bold; ``*`` where
a paired t-test over test users against the same backbone without denoiser
(``none``) gives p < 0.05 and the mean is higher. Runs with several seeds are
averaged; significance then uses the users' per-seed means.
A second table gives the noise-detection ROC-AUC of every run whose dataset
carried planted noise and whose denoiser judges interactions.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import MMDenoiseError
from ..eval import paired_ttest
from ..eval.significance import align
from ..train import record

METRICS = ("recall@20", "ndcg@20")


def find_runs(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (itself included) holding a finished run (result.json)."""
    root = Path(root)
    runs = sorted(p.parent for p in root.rglob(record.RESULT_FILE))
    if not runs:
        raise MMDenoiseError(f"no run folders (with {record.RESULT_FILE}) under {root}")
    return runs


def _per_user_mean(runs: list[Path], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Users evaluated in every run and their metric averaged over the runs (seeds)."""
    users, values = None, None
    for run in runs:
        z = record.read_per_user(run)
        if users is None:
            users, values = z["users"], z[f"test_{metric}"].astype(np.float64)
        else:
            users, a, b = align(users, values, z["users"], z[f"test_{metric}"])
            values = a + b
    return users, values / len(runs)


def comparison_table(run_dirs: list[Path], alpha: float = 0.05) -> str:
    """Markdown tables (one per dataset) of test metrics with bold best and ``*`` significance marks."""
    groups: dict[str, dict[tuple[str, str], list[Path]]] = defaultdict(lambda: defaultdict(list))
    for run in run_dirs:
        result = record.read_result(run)
        groups[result["dataset"]["name"]][(result["model"], result["denoiser"])].append(run)
    out = []
    for dataset, cells in sorted(groups.items()):
        models = sorted({m for m, _ in cells})
        denoisers = sorted({d for _, d in cells}, key=lambda d: (d != "none", d))
        means = {key: {m: np.mean([record.read_result(r)["test"][m] for r in runs]) for m in METRICS}
                 for key, runs in cells.items()}
        best = {(model, m): max(means[(model, d)][m] for d in denoisers if (model, d) in means)
                for model in models for m in METRICS}
        header = "| denoiser | " + " | ".join(f"{model} R@20 | {model} N@20" for model in models) + " |"
        lines = [f"**{dataset}** (test, mean over seeds; * p < {alpha} paired t-test vs none)", "",
                 header, "|---|" + "---:|" * (2 * len(models))]
        for den in denoisers:
            row = [den]
            for model in models:
                for metric in METRICS:
                    if (model, den) not in cells:
                        row.append("–")
                        continue
                    value = means[(model, den)][metric]
                    text = f"{value:.4f}"
                    if den != "none" and (model, "none") in cells:
                        users_a, a = _per_user_mean(cells[(model, den)], metric)
                        users_b, b = _per_user_mean(cells[(model, "none")], metric)
                        _, a, b = align(users_a, a, users_b, b)
                        if a.mean() > b.mean() and paired_ttest(a, b)[1] < alpha:
                            text += "*"
                    row.append(f"**{text}**" if value == best[(model, metric)] else text)
            lines.append("| " + " | ".join(row) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def detection_table(run_dirs: list[Path]) -> str:
    """Markdown table of detection ROC-AUC and precision@|noise| (last epoch) per dataset, model and denoiser."""
    rows = []
    for run in run_dirs:
        result = record.read_result(run)
        if "detection" in result:
            d = result["detection"]
            rows.append((result["dataset"]["name"], result["model"], result["denoiser"], result["seed"],
                         d["auc"], d["precision@noise"]))
    if not rows:
        return ""
    lines = ["| dataset | model | denoiser | seed | detection AUC | precision@noise |", "|---|---|---|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {s} | {auc:.3f} | {p:.3f} |" for a, b, c, s, auc, p in sorted(rows)]
    return "\n".join(lines) + "\n"


def write_report(root: str | Path, out: str | Path | None = None) -> Path:
    """report.md under ``root`` (or ``out``): the comparison and detection tables of every run found."""
    from ..io import write_text
    runs = find_runs(root)
    text = "# Results\n\n" + comparison_table(runs)
    detection = detection_table(runs)
    if detection:
        text += "\n## Noise detection (planted added interactions)\n\n" + detection
    path = Path(out) if out is not None else Path(root) / "report.md"
    write_text(path, text)
    return path
