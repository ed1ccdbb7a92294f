"""Hyper-parameter sweeps: grid and random search over any config keys, selected on validation.

:func:`sweep` reads a spec (``experiments.spec``: the file format, its
validation and the trials it expands to), runs its trials with the one runner
(``experiments.runner``: local processes or Ray Tune; finished trials skipped,
partial ones resumed) and chooses the best trial on the validation metric only.
It writes ``sweep.json`` and ``sweep.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import ConfigError
from ..config import Override, override_pairs
from .runner import Objective, best_record, param_text, run_trials, summary_record
from .spec import SweepSpec, expand, load_spec
from .tables import Cell, markdown

SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"


@dataclass
class SweepResult:
    """Every trial's record (params, objective, metrics, status) and the best one (validation only)."""

    root: Path
    objective: Objective
    trials: list[dict]
    best: dict | None

    @property
    def failed(self) -> list[dict]:
        return [t for t in self.trials if t.get("status") == "failed"]


def sweep(spec: SweepSpec | str | Path, out: str | Path | None = None, *, backend: str = "local",
          workers: int = 1, address: str | None = None, overrides: Sequence[str | Override] = (),
          on_result: Callable[[dict], None] | None = None) -> SweepResult:
    """Run the sweep described by ``spec`` (a file or a parsed spec) into ``out`` and write its summary.

    out: the sweep folder (default ``sweeps/<spec file stem>``; running again
        with the same folder resumes). overrides: extra fixed settings,
        (key, value) pairs or ``key=value`` text, applied to every trial
        after the spec's ``set``.
    Returns a SweepResult; ``out/sweep.json`` and ``out/sweep.md`` list every
    trial's parameters and objective, and the best trial with its test metrics.
    """
    if not isinstance(spec, SweepSpec):
        path = Path(spec)
        spec = load_spec(path)
        out = out if out is not None else Path("sweeps") / path.stem
    if out is None:
        raise ConfigError("sweep: the output folder (out=...) is needed for a spec given as a mapping")
    trials = expand(spec, override_pairs(overrides))
    records = run_trials(out, trials, spec.objective, backend=backend, workers=workers, address=address,
                         on_result=on_result)
    result = SweepResult(Path(out).resolve(), spec.objective, records, best_record(records, spec.objective))
    write_summary(result, spec)
    return result


def summary_table(result: SweepResult) -> str:
    """Markdown: one row per trial (its parameters and validation objective), best first, best in bold."""
    keys = list(dict.fromkeys(k for t in result.trials for k in t["params"]))
    ordered = sorted(result.trials, key=lambda t: (t.get("objective") is None,
                                                   -(t.get("objective") or 0.0) if result.objective.mode == "max"
                                                   else (t.get("objective") or 0.0)))
    rows = []
    for rank, t in enumerate(ordered, 1):
        value = t.get("objective")
        best = result.best is not None and t["name"] == result.best["name"]
        rows.append([str(rank), t["name"], *(param_text(t["params"][k]) for k in keys),
                     Cell("failed" if value is None else f"{value:.4f}", bold=best)])
    header = ["rank", "trial", *keys, f"valid {result.objective.metric}"]
    return markdown(header, rows, "rl" + "l" * len(keys) + "r") + "\n"


def write_summary(result: SweepResult, spec: SweepSpec) -> None:
    """sweep.json (every trial, the best, the objective) and sweep.md (the table) under the sweep folder."""
    from ..io import write_json, write_text
    obj = {"metric": result.objective.metric, "mode": result.objective.mode, "split": "valid"}
    best = None
    if result.best is not None:
        best = summary_record(result.best, ("name", "params", "objective", "valid", "test", "path"))
    write_json(result.root / SWEEP_JSON, {
        "spec": spec.source, "objective": obj,
        "trials": [summary_record(t, ("name", "params", "objective", "status", "error", "path"))
                   for t in result.trials],
        "best": best})
    text = [f"# Sweep: {spec.source}", "",
            f"Objective: validation {result.objective.metric} ({result.objective.mode}); "
            f"{len(result.trials)} trials, {len(result.failed)} failed. Selection uses validation only.", "",
            summary_table(result)]
    if best is not None:
        test = ", ".join(f"{m} {best['test'][m]:.4f}" for m in ("recall@20", "ndcg@20") if m in best["test"])
        text += [f"**Best trial**: `{best['name']}` {best['params']} — valid {result.objective.metric} "
                 f"{best['objective']:.4f}; its test metrics (reported, not used to select): {test}", ""]
    write_text(result.root / SWEEP_MD, "\n".join(text))



__all__ = ["SweepResult", "sweep", "summary_table", "write_summary", "SWEEP_JSON", "SWEEP_MD"]
