"""Figures read from run folders (DESIGN §7). Each function answers one question with one PNG.

matplotlib runs on the non-interactive Agg backend, so plotting works on
machines without a display; files are written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import MMDenoiseError
from ..eval import detection_metrics
from ..io import atomic_path
from ..train import record


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
