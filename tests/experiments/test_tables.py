"""The one table renderer (``experiments.tables``); every Markdown and LaTeX table the library writes,
on fixed inputs, against the text the table functions wrote before they shared it
(``tests/experiments/tables/``; two changes: an empty cell of the sequential studies' tables is
``| |``, as the datasets page always wrote it, no longer ``|  |``; a mapping-valued sweep parameter
reads as YAML, ``{a: 1.0e-07}``, no longer with JSON-quoted keys); and the committed result pages
under docs/results re-rendered from their JSON."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from mmdenoise.training import record

GOLDEN = Path(__file__).parent / "tables"
RESULTS = Path(__file__).parents[2] / "docs" / "results"


# ---------------------------------------------------------------- renderer
def test_markdown_alignment_bold_marks_and_escaping():
    from mmdenoise.experiments.tables import Cell, markdown
    text = markdown(["name", "value", "centred"], [["a|b", Cell("0.5", bold=True, marked=True), ""],
                                                  ["c", Cell("0.25", marked=True), Cell("x", bold=True)]], "lrc")
    assert text.splitlines() == ["| name | value | centred |", "|---|---:|:---:|",
                                 "| a\\|b | **0.5*** | |", "| c | 0.25* | **x** |"]


def test_latex_escapes_bolds_marks_and_groups_columns():
    from mmdenoise.experiments.tables import Cell, latex
    text = latex(["Model", "R@20", "N@20"], [["mf_x & 50%", Cell("0.5", bold=True, marked=True), "$1"]], "lrr",
                 groups=[("", 1), ("lightgcn #1", 2)])
    assert text.splitlines() == [r"\begin{tabular}{lrr}", r"\toprule",
                                 r" & \multicolumn{2}{c}{lightgcn \#1} \\", r"\cmidrule(lr){2-3}",
                                 r"Model & R@20 & N@20 \\", r"\midrule",
                                 r"mf\_x \& 50\% & \textbf{0.5}$^*$ & \$1 \\", r"\bottomrule", r"\end{tabular}"]
    floating = latex(["a"], [["b~c^d"]], "l", caption=r"Caption with $p < 0.05$")
    assert floating.splitlines()[:3] == [r"\begin{table}[t]", r"\centering", r"\caption{Caption with $p < 0.05$}"]
    assert r"b\textasciitilde{}c\textasciicircum{}d \\" in floating and floating.endswith(r"\end{table}")


@pytest.mark.parametrize("call, message", [
    (lambda m, la: m(["a", "b"], [["1"]], "lr"), "a row of 1 cells in a table of 2 columns"),
    (lambda m, la: m(["a", "b"], [], "lx"), "one of l, r, c per column"),
    (lambda m, la: la(["a", "b"], [], "lr", groups=[("g", 3)]), "do not span the 2 columns"),
])
def test_malformed_tables_are_refused(call, message):
    from mmdenoise.experiments.tables import latex, markdown
    with pytest.raises(ValueError, match=message):
        call(markdown, latex)


# ------------------------------------------------------------------ inputs
def _run(root: Path, dataset: str, model: str, denoiser: str, seed: int, per_user: np.ndarray,
         detection: dict | None = None) -> Path:
    path = root / f"{dataset}-{model}-{denoiser}-{seed}"
    path.mkdir(parents=True)
    result = {"dataset": {"name": dataset, "fingerprint": f"fp-{dataset}"}, "model": model, "denoiser": denoiser,
              "seed": seed, "test": {"recall@20": float(per_user.mean()), "ndcg@20": float(per_user.mean() / 2)}}
    if detection is not None:
        result["detection"] = detection
    record.write_result(path, result)
    np.savez(path / record.PER_USER_FILE, users=np.arange(per_user.size),
             **{"test_recall@20": per_user, "test_ndcg@20": per_user / 2})
    return path


def report_runs(root: Path) -> list[Path]:
    """Two datasets (one with LaTeX specials in its name), three backbones, a missing cell, two seeds,
    one clearly better denoiser and detection metrics on some runs."""
    rng = np.random.default_rng(3)
    base = rng.random(120) * 0.5
    runs = []
    for dataset in ("toy", "my_data&co"):
        for model, shift in (("mf", 0.0), ("lightgcn", 0.02), ("mf_x", 0.01)):
            for seed in (0, 1):
                noise = lambda: 0.002 * rng.normal(size=120)  # noqa: E731
                runs.append(_run(root, dataset, model, "none", seed, base + shift + noise()))
                runs.append(_run(root, dataset, model, "tce", seed, base + shift + 0.05 + noise(),
                                 detection={"auc": 0.7 + 0.01 * seed, "precision@noise": 0.4}))
                if model != "mf_x":
                    runs.append(_run(root, dataset, model, "rce", seed, base + shift + noise()))
    return sorted(runs)


def noise_cells(root: Path) -> dict:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.4, 50)
    cells = {}
    for model in ("lightgcn", "mf"):
        for denoiser, level, shift in (("none", 0.0, 0.0), ("none", 0.2, -0.02), ("tce", 0.0, 0.0),
                                       ("tce", 0.2, 0.03), ("guider", 0.0, 0.01), ("guider", 0.2, -0.01)):
            records = []
            for seed in range(2):
                run = root / f"{model}-{denoiser}-{level}-{seed}"
                run.mkdir(parents=True)
                values = base + shift + rng.normal(0, 0.01, 50)
                np.savez(run / record.PER_USER_FILE, users=np.arange(50),
                         **{f"test_{m}": values * f for m, f in (("recall@20", 1.0), ("ndcg@20", 0.8))})
                records.append({"path": str(run), "test": {"recall@20": float(values.mean()),
                                                           "ndcg@20": float(0.8 * values.mean())}})
            cells[(model, denoiser, level)] = records
    return cells


def ablation_records(root: Path) -> list[dict]:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.4, 60)
    records = []
    for label, shift in (("none", 0.0), ("iig", 0.04), ("diig", 0.0), ("damrs+au", -0.01)):
        for seed in range(2):
            run = root / f"{label}-{seed}"
            run.mkdir(parents=True)
            values = base + shift + rng.normal(0, 0.01, 60)
            np.savez(run / record.PER_USER_FILE, users=np.arange(60),
                     **{f"test_{m}": values for m in ("recall@20", "ndcg@20")})
            records.append({"params": {"variant": label, "seed": seed}, "path": str(run),
                            "test": {"recall@20": float(values.mean()), "ndcg@20": float(values.mean() * 0.7)},
                            "valid": {"recall@20": float(values.mean() + 0.01)}})
    return records


BASELINE_ROWS = {
    "pop": {"valid_recall@20": 0.11579, "test_recall@20": 0.11403, "test_ndcg@20": 0.11745, "best_epoch": -1.0,
            "epochs_run": 0.0, "seconds_per_epoch": 0.0, "eval_seconds": 0.909},
    "mf": {"valid_recall@20": 0.23075, "test_recall@20": 0.22869, "test_ndcg@20": 0.21917, "best_epoch": 52.5,
           "epochs_run": 73.0, "seconds_per_epoch": 9.1388, "eval_seconds": 0.962},
    "lightgcn": {"valid_recall@20": 0.248, "test_recall@20": 0.22871, "test_ndcg@20": 0.2365, "best_epoch": 169.0,
                 "epochs_run": 190.0, "seconds_per_epoch": 34.8, "eval_seconds": 0.4},
}

SWEEP_TRIALS = [
    {"name": "lr=1.0e-05_n_layers=1-aaaa", "params": {"train.lr": 1e-05, "n_layers": 1, "denoiser": "none",
                                                      "train.ks": [10, 20], "flag": True, "opt": None},
     "objective": 0.21},
    {"name": "lr=0.01_n_layers=2-bbbb", "params": {"train.lr": 0.01, "n_layers": 2, "denoiser": "tce",
                                                   "train.ks": [20], "flag": False, "opt": 2.5e20},
     "objective": 0.3312},
    {"name": "lr=0.1_n_layers=3-cccc", "params": {"train.lr": 0.1, "n_layers": 3, "denoiser": "tce",
                                                  "train.ks": [5], "flag": False, "opt": {"a": 1e-07}},
     "objective": None, "status": "failed"},
]

STATS = [{"source": "d", "users": 2, "items": 5, "interactions": {"total": 4},
          "modalities": {"a": {"dim": 3, "mean_cosine": 0.25, "overlap": 0.5, "lift": 2.0, "k": 10},
                         "b": {"dim": 1, "mean_cosine": 1.0, "overlap": 0.1, "lift": 0.4, "k": 10}}},
         {"source": "ids-only", "users": 1200, "items": 1, "interactions": {"total": 1000}, "modalities": {}}]

DEMO_ROWS = [{"model": "pop", "denoiser": "none", "best_epoch": -1, "seconds_per_epoch": 0.0,
              "test": {"recall@20": 0.1, "ndcg@20": 0.2, "recall@50": 0.3, "ndcg@50": 0.4}},
             {"model": "lightgcn", "denoiser": "tce", "best_epoch": 12, "seconds_per_epoch": 1.23456,
              "test": {"recall@20": 0.31, "ndcg@20": 0.22, "recall@50": 0.53, "ndcg@50": 0.34}}]


def sensitivity_rows() -> list[dict]:
    metrics = {"recall@20": 0.15, "ndcg@20": 0.18, "recall@50": 0.31, "ndcg@50": 0.229}
    row = lambda label, columns, p=None, shift=0.0: {  # noqa: E731
        "label": label, "columns": columns, "runs": [Path(f"{label}-s0")],
        "valid": {**metrics, "recall@20": 0.217 + shift}, "test": {k: v + shift for k, v in metrics.items()},
        "best_epoch": 33.0, "seconds_per_epoch": 7.54, **({} if p is None else {"p_vs_base": p})}
    return [row("base", {}), row("gi0.4-gm0.2", {"gamma_i+gamma_m": 0.6, "gamma_m": 0.2}, 0.62166, 0.01),
            row("gi0.6-gm0.2", {"gamma_i+gamma_m": 0.8, "gamma_m": 0.2}, 0.0601, -0.01),
            {"label": "gi0.3-gm0.1", "columns": {"gamma_i+gamma_m": 0.4, "gamma_m": 0.1}, "runs": None}]


def split_rows() -> tuple[list[dict], list[dict]]:
    metrics = {"recall@20": 0.18, "ndcg@20": 0.2, "recall@50": 0.33, "ndcg@50": 0.25}
    per_split = [{"split": k, "model": m, "best_epoch": 20.0 + k, "valid_recall@20": 0.2 + 0.01 * k,
                  **{key: v + 0.001 * k for key, v in metrics.items()},
                  **({"delta": 0.0123 - 0.02 * k, "p": 0.0456} if m == "demure" else {})}
                 for m in ("base", "demure") for k in (1, 0)]
    pooled = [{"model": "base", "valid_recall@20": 0.2, "n_pairs": 188, **metrics},
              {"model": "demure", "valid_recall@20": 0.21, "n_pairs": 188, "n_users": 170, **metrics,
               **{f"p_{k}": 0.01 * (i + 1) for i, k in enumerate(metrics)}, "p_users_recall@20": 0.042}]
    return per_split, pooled


# ------------------------------------------------------------------ tables
def render_all(root: Path) -> dict[str, str]:
    """Every table of the library on the inputs above: file name -> text."""
    from mmdenoise.experiments import datasets, demo, report, study
    from mmdenoise.experiments.runner import Objective
    from mmdenoise.experiments.sweep import SweepResult, summary_table
    from mmdenoise.sequential import study as seq_study
    runs = report_runs(root / "runs")
    per_split, pooled = split_rows()
    sweep_result = SweepResult(root, Objective("ndcg@10", "max"), SWEEP_TRIALS, SWEEP_TRIALS[1])
    return {
        "comparison.md": report.comparison_table(runs),
        "comparison.tex": report.comparison_table_latex(runs),
        "detection.md": report.detection_table(runs),
        "detection.tex": report.detection_table_latex(runs),
        "noise.md": study.noise_table("ml-100k", "add", ["lightgcn", "mf"], ["none", "tce", "guider"], [0.0, 0.2],
                                      noise_cells(root / "noise"), 2),
        "ablation.md": study.ablation_table("ml-100k", "mf", "damrs", ["none", "iig", "diig", "damrs+au"],
                                            ablation_records(root / "ablation")),
        "baselines.md": study.baseline_table("ml-1m", ["pop", "mf", "lightgcn"], BASELINE_ROWS, 2),
        "sweep.md": summary_table(sweep_result),
        "stats.md": datasets.stats_table(STATS),
        "demo.md": demo.results_table(DEMO_ROWS) + "\n",
        "sensitivity.md": seq_study._sensitivity_table(sensitivity_rows(), "gi0.4-gm0.2", "gamma", "ml-100k", [0]),
        "splits.md": seq_study._split_tables(per_split, pooled, [0, 1], "base"),
    }


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.glob("*.*")))
def test_tables_render_as_before(tmp_path, name):
    assert render_all(tmp_path)[name] == (GOLDEN / name).read_text(encoding="utf-8")


# ------------------------------------------------------- committed pages
def test_datasets_page_rerenders_identically(tmp_path, monkeypatch):
    from mmdenoise.experiments import datasets
    stats = json.loads((RESULTS / "datasets.json").read_text(encoding="utf-8"))
    by_source = {s["source"]: s for s in stats["datasets"]}
    monkeypatch.setattr(datasets, "dataset_stats", lambda name, k: by_source[name])
    monkeypatch.chdir(tmp_path)
    page = datasets.write_stats_page(list(by_source), Path("docs/results/datasets.md"), k=stats["k"])
    assert page.read_text(encoding="utf-8") == (RESULTS / "datasets.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in RESULTS.glob("baselines/*/baselines.json")))
def test_baselines_pages_rerender_identically(tmp_path, folder):
    from mmdenoise.experiments.study import _write, baseline_table
    summary = json.loads((RESULTS / "baselines" / folder / "baselines.json").read_text(encoding="utf-8"))
    done = [m for m in summary["models"] if m not in summary["not_run"]]
    table = baseline_table(summary["dataset"], done, summary["rows"], len(summary["seeds"]))
    if summary["not_run"]:
        table += f"\nNot run yet: {', '.join(summary['not_run'])}.\n"
    _write(tmp_path, "baselines", table, {}, [])
    assert (tmp_path / "baselines.md").read_text(encoding="utf-8") == \
        (RESULTS / "baselines" / folder / "baselines.md").read_text(encoding="utf-8")


def _starred(page: str) -> set[tuple[str, str, int]]:
    """(table title, row label, column) of every cell a committed page marks with ``*`` (the paired
    tests behind the marks need the per-user files, which are not committed)."""
    marks, title = set(), ""
    for line in page.splitlines():
        if line.startswith("**"):
            title = line
        elif line.startswith("| ") and not line.startswith(("| denoiser |", "| variant |")):
            cells = [c.strip() for c in line.strip("|").split("|")]
            marks |= {(title, cells[0], j) for j, c in enumerate(cells)
                      if c.endswith("***") or (c.endswith("*") and not c.endswith("**"))}
    return marks


@pytest.mark.parametrize("page", ["noise-ml100k/study.md", "damrs-ml100k/study.md"])
def test_noise_study_pages_rerender_identically(tmp_path, monkeypatch, page):
    from mmdenoise.experiments import study
    committed = (RESULTS / page).read_text(encoding="utf-8")
    summary = json.loads((RESULTS / page).with_suffix(".json").read_text(encoding="utf-8"))
    starred = {(re.match(r"\*\*(.+?)\*\*.*: test (\S+) under", title).groups(), row, column)
               for title, row, column in _starred(committed)}
    levels = summary["levels"]
    cells = {(c["model"], c["denoiser"], c["level"]): [
        {"path": f"{c['model']}|{c['denoiser']}|{c['level']}", "test": {m: c[m]["values"][i] for m in
                                                                       ("recall@20", "ndcg@20")}}
        for i in range(len(summary["seeds"]))] for c in summary["cells"]}

    def marked(runs_a, runs_b, metric, alpha):
        model, denoiser, level = str(runs_a[0]).split("|")
        short = dict(study.TABLE_METRICS)[metric]
        return ((model, short), denoiser, 1 + levels.index(float(level))) in starred

    monkeypatch.setattr("mmdenoise.eval.pairing.significantly_better", marked)
    table = study.noise_table(summary["dataset"], summary["kind"], summary["models"], summary["denoisers"],
                              levels, cells, len(summary["seeds"]))
    study._write(tmp_path, "study", table, {}, [f"noise_{m}.png" for m in summary["models"]])
    assert (tmp_path / "study.md").read_text(encoding="utf-8") == committed


@pytest.mark.parametrize("page", sorted(p.name for p in RESULTS.glob("damrs-ml100k/ablation-*.md")))
def test_ablation_pages_rerender_identically(tmp_path, monkeypatch, page):
    from mmdenoise.experiments import study
    committed = (RESULTS / "damrs-ml100k" / page).read_text(encoding="utf-8")
    summary = json.loads((RESULTS / "damrs-ml100k" / page).with_suffix(".json").read_text(encoding="utf-8"))
    starred = _starred(committed)
    records = [{**run, "path": run["params"]["variant"]} for run in summary["runs"]]

    def marked(runs_a, runs_b, metric, alpha):
        column = 1 + [m for m, _ in study.TABLE_METRICS].index(metric)
        return any(row == str(runs_a[0]) and j == column for _, row, j in starred)

    monkeypatch.setattr("mmdenoise.eval.pairing.significantly_better", marked)
    table = study.ablation_table(summary["dataset"], summary["model"], summary["denoiser"],
                                 list(summary["variants"]), records)
    study._write(tmp_path, "ablation", table, {}, [])
    assert (tmp_path / "ablation.md").read_text(encoding="utf-8") == committed
