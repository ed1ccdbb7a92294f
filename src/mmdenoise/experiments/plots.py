"""Figures read from run folders, and the cost-vs-size figure of ``bench --scale``. Each
function answers one question with one PNG.

matplotlib runs on the non-interactive Agg backend, so plotting works on
machines without a display; files are written atomically.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import MMDenoiseError
from ..eval import detection_metrics
from ..io import atomic_path
from ..training import record


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _run_label(run_dir: Path) -> str:
    result = record.read_result(run_dir)
    return f"{result['model']} + {result['denoiser']}"


def score_distributions(run_dirs: Sequence[str | Path], out: str | Path, bins: int = 50) -> Path:
    """Clean vs injected interactions: histograms of each run's per-interaction clean score, side by side.

    Like GUIDER's Fig. 4: if a judgement separates the planted noise, the two
    histograms part. Each run folder needs ``interaction_scores.npz`` with a
    ``noisy`` mask (a denoiser that judges interactions, trained on a dataset
    with planted added interactions). Panels are titled with the model,
    denoiser and the detection ROC-AUC. Returns ``out``.
    """
    runs = [Path(r) for r in run_dirs]
    if not runs:
        raise MMDenoiseError("score_distributions needs at least one run folder")
    panels = []
    for run in runs:
        if not run.is_dir():
            raise MMDenoiseError(f"{run}: no such run folder")
        if not (run / record.SCORES_FILE).exists():
            raise MMDenoiseError(f"{run / record.SCORES_FILE} does not exist: the run's denoiser makes no "
                                 "per-interaction judgement (e.g. none, wbpr)")
        scores = record.read_scores(run)
        if "noisy" not in scores or not scores["noisy"].any():
            raise MMDenoiseError(f"{run / record.SCORES_FILE}: the run's dataset has no planted added "
                                 "interactions to compare against (use `mmdenoise data noise --add`)")
        panels.append((_run_label(run), scores["clean_score"], scores["noisy"]))

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (label, clean_score, noisy) in zip(axes[0], panels):
        auc = detection_metrics(clean_score, noisy)["auc"]
        edges = np.histogram_bin_edges(clean_score, bins=bins)
        ax.hist(clean_score[~noisy], bins=edges, density=True, alpha=0.6, label=f"clean ({(~noisy).sum()})")
        ax.hist(clean_score[noisy], bins=edges, density=True, alpha=0.6, label=f"injected ({noisy.sum()})")
        ax.set_title(f"{label}\ndetection AUC {auc:.3f}", fontsize=10)
        ax.set_xlabel("clean score (higher = judged clean)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return out


def _save(fig, plt, out: str | Path) -> Path:
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out


def training_curves(run_dirs: Sequence[str | Path], out: str | Path, metric: str = "recall@20") -> Path | None:
    """Validation ``metric`` per epoch, one line per run (from metrics.jsonl), one panel per dataset.

    Lines are labelled ``model + denoiser (seed s)``; runs without validated
    epochs are left out. Returns ``out``, or None (nothing written) when no
    run has a validation history.
    """
    panels: dict[str, list[tuple[str, list[int], list[float]]]] = {}
    for run in map(Path, run_dirs):
        history = [r for r in record.read_metrics(run) if metric in r.get("valid", {})]
        if not history:
            continue
        result = record.read_result(run)
        label = f"{result.get('model', '?')} + {result.get('denoiser', 'none')} (seed {result.get('seed', '?')})"
        panels.setdefault(result.get("dataset", {}).get("name", "?"), []).append(
            (label, [r["epoch"] + 1 for r in history], [r["valid"][metric] for r in history]))
    if not panels:
        return None
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.0), squeeze=False)
    for ax, (dataset, lines) in zip(axes[0], sorted(panels.items())):
        counts, seen = Counter(label for label, _, _ in lines), Counter()
        for label, epochs, values in lines:
            if counts[label] > 1:  # same model, denoiser and seed in several runs (e.g. a sweep): number them
                seen[label] += 1
                label = f"{label} #{seen[label]}"
            ax.plot(epochs, values, marker="." if len(epochs) < 30 else None, linewidth=1.2, label=label)
        ax.set_title(f"{dataset}: validation {metric} during training", fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"validation {metric}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7 if len(lines) > 6 else 8, ncol=1 + len(lines) // 12, loc="best")
    fig.tight_layout()
    return _save(fig, plt, out)


NOISE_AXIS = {"add": "added interactions (% of the training set)",
              "remove": "removed interactions (% of the training set)",
              "swap": "items whose {modality} features are swapped (%)",
              "misalign": "items whose {modality} features are misaligned (%)"}


def noise_curves(out: str | Path, model: str, dataset: str, kind: str, levels: Sequence[float],
                 series: dict[str, Sequence[tuple[float, float]]], n_seeds: int,
                 metric_label: str = "test Recall@20") -> Path:
    """Test metric vs noise level for one backbone: a line per denoiser, error bars = std over seeds.

    levels: ratios (plotted as %); series: denoiser -> [(mean, std)] aligned
    with levels; kind: ``add``, ``remove``, ``swap:MOD`` or ``misalign:MOD``.
    """
    name, _, modality = kind.partition(":")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    x = 100 * np.asarray(levels, dtype=np.float64)
    # lines are nudged apart sideways (1% of the axis each) so that overlapping error bars stay readable
    dodge = 0.01 * (np.ptp(x) if x.size > 1 and np.ptp(x) > 0 else 1.0)
    for k, (denoiser, points) in enumerate(series.items()):
        mean, std = np.asarray(points, dtype=np.float64).T
        shift = (k - (len(series) - 1) / 2) * dodge
        ax.errorbar(x + shift, mean, yerr=std if n_seeds > 1 else None, marker="o", capsize=3, linewidth=1.5,
                    label=denoiser)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in x])
    ax.set_xlabel(NOISE_AXIS.get(name, f"{kind} noise (%)").format(modality=modality))
    ax.set_ylabel(metric_label)
    spread = f", mean ± std over {n_seeds} seeds" if n_seeds > 1 else ""
    ax.set_title(f"{model} on {dataset}: {metric_label} vs {name} noise{spread}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(title="denoiser", fontsize=9)
    fig.tight_layout()
    return _save(fig, plt, out)


def scaling_plot(out: str | Path, title: str, sizes: Sequence[float],
                 series: dict[str, tuple[Sequence[float], float, float]], labels: Sequence[str] = ()) -> Path:
    """Cost vs data size on log–log axes: per series the measured points and its fitted power law.

    sizes: [n] positive (training interactions); series: label (``s/epoch``) -> (costs [n] in
    seconds, slope, intercept) with the fit ``cost = exp(intercept) · size ** slope`` (natural
    logs), the slope shown in the legend; labels: [n] names written beside the first series'
    points (datasets). A dotted grey line of slope 1 through the first series' fit at the middle
    size shows what linear growth would look like. Returns ``out``.
    """
    x = np.asarray(sizes, dtype=np.float64)
    line_x = np.geomspace(x.min(), x.max(), 50)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for k, (name, (costs, slope, intercept)) in enumerate(series.items()):
        color = f"C{k}"
        ax.scatter(x, costs, color=color, zorder=3)
        ax.plot(line_x, np.exp(intercept) * line_x ** slope, color=color, linewidth=1.5,
                label=f"{name}: slope {slope:.2f}")
        if k == 0:
            middle = np.sqrt(x.min() * x.max())
            at_middle = np.exp(intercept) * middle ** slope
            ax.plot(line_x, at_middle * line_x / middle, color="0.5", linestyle=":", linewidth=1.0,
                    label="slope 1 (linear)")
            for size, cost, text in zip(x, costs, labels):
                ax.annotate(text, (size, cost), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training interactions")
    ax.set_ylabel("seconds")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, plt, out)
