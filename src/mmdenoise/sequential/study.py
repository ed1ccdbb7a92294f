"""Demure's sensitivity studies (paper Tables 3–4): the augmentation rates γ_i/γ_m and the number J
of augmented pairs, each grid point against the base model on the same user split.

``sensitivity_study`` trains the base model and Demure at every grid point
(one run folder each under ``out``; finished runs are reused, so an
interrupted study resumes), then writes ``sensitivity-<grid>.md`` and
``.json``: validation and test Recall/NDCG@20 and @50 per point, and the
paired t-test p-value of its test Recall@20 against the base model's over the
common test users (with several seeds: the users' per-seed means). The
point to pick is the best on **validation**, marked in the table.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..eval.significance import align, paired_ttest
from ..experiments.report import per_user_mean
from ..io import write_json, write_text
from ..train import record

#: Table 3: (γ_i + γ_m, γ_m)
GAMMA_POINTS: tuple[tuple[float, float], ...] = ((0.8, 0.6), (0.8, 0.4), (0.8, 0.2), (0.6, 0.4), (0.6, 0.3),
                                                 (0.6, 0.2), (0.4, 0.3), (0.4, 0.2), (0.4, 0.1))
#: Table 4: J
J_POINTS: tuple[int, ...] = (1, 2, 4)
METRICS = ("recall@20", "ndcg@20", "recall@50", "ndcg@50")


def grid_points(grid: str) -> list[tuple[str, dict, list[str]]]:
    """(label, shown columns, overrides) of every point of the ``gamma`` or ``j`` grid."""
    if grid == "gamma":
        return [(f"gi{round(total - gm, 2)}-gm{gm}", {"gamma_i+gamma_m": total, "gamma_m": gm},
                 [f"gamma_i={round(total - gm, 2)}", f"gamma_m={gm}"]) for total, gm in GAMMA_POINTS]
    if grid == "j":
        return [(f"j{j}", {"J": j}, [f"n_views={j}"]) for j in J_POINTS]
    raise ConfigError(f"unknown sensitivity grid {grid!r}; grids: gamma (Table 3), j (Table 4)")


def _run(folder: Path, dataset, model: str, seed: int, overrides: Sequence[str]) -> Path:
    if not (folder / record.RESULT_FILE).exists():
        from .api import train_sequential
        train_sequential(dataset, model, seed=seed, overrides=list(overrides), out=folder, progress=False)
    return folder


def sensitivity_study(dataset, grid: str, out: str | Path, *, seeds: Sequence[int] = (0,),
                      overrides: Sequence[str] = ()) -> Path:
    """Train the base model and Demure over ``grid`` (``gamma`` or ``j``) and write the table; returns
    the Markdown file. ``overrides`` apply to every run (e.g. ``train.threads=1``)."""
    out = Path(out)
    points = grid_points(grid)
    base = [_run(out / f"base-s{s}", dataset, "base", s, overrides) for s in seeds]
    base_users, base_values = per_user_mean(base, "recall@20")
    rows = [{"label": "base", "columns": {}, "runs": base}]
    for label, columns, extra in points:
        runs = [_run(out / f"demure-{label}-s{s}", dataset, "demure", s, [*overrides, *extra]) for s in seeds]
        rows.append({"label": label, "columns": columns, "runs": runs})
    for row in rows:
        results = [record.read_result(r) for r in row["runs"]]
        for split in ("valid", "test"):
            row[split] = {m: float(np.mean([r[split][m] for r in results])) for m in METRICS}
        if row["label"] != "base":
            users, values = per_user_mean(row["runs"], "recall@20")
            _, a, b = align(users, values, base_users, base_values)
            row["p_vs_base"] = paired_ttest(a, b)[1]
    best = max(rows[1:], key=lambda r: r["valid"]["recall@20"])["label"]
    keys = list(rows[1]["columns"])
    lines = ["| " + " | ".join(keys + ["valid R@20", "test R@20", "test N@20", "test R@50", "test N@50",
                                      "p vs base"]) + " |",
             "|" + "---|" * (len(keys) + 6)]
    for row in rows:
        shown = [str(row["columns"][k]) for k in keys] if row["columns"] else ["base"] + [""] * (len(keys) - 1)
        mark = " ←" if row["label"] == best else ""
        p = f"{row['p_vs_base']:.3g}" if "p_vs_base" in row else "–"
        lines.append("| " + " | ".join(shown + [f"{row['valid']['recall@20']:.4f}{mark}"] +
                                       [f"{row['test'][m]:.4f}" for m in METRICS] + [p]) + " |")
    note = (f"\nDemure sensitivity ({grid}) on {dataset}, seeds {list(seeds)}; ← = best validation "
            "Recall@20 (the point to select); p = paired t-test of test Recall@20 vs base over test users.\n")
    table = "\n".join(lines) + "\n" + note
    path = out / f"sensitivity-{grid}.md"
    write_text(path, table)
    write_json(out / f"sensitivity-{grid}.json",
               {"grid": grid, "dataset": str(dataset), "seeds": list(seeds), "best_valid": best,
                "rows": [{**row, "runs": [str(r) for r in row["runs"]]} for row in rows]})
    return path


def read_table(path: str | Path) -> dict:
    """The JSON written next to a sensitivity table."""
    return json.loads(Path(path).with_suffix(".json").read_text(encoding="utf-8"))
