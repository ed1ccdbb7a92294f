"""Running a claims study in stages (:func:`claims_study`) and what is left of one (:func:`claims_plan`)."""
from __future__ import annotations

import heapq
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ...errors import ConfigError
from ...log import get_logger
from ..runner import check_workers, run_trials, trial_status
from .spec import ClaimsSpec, OBJECTIVE, _names, load_claims_spec
from .runs import (EVIDENCE_DIR, SELECTION_JSON, TUNING_JSON, collect_evidence, committed_final, final_trials,
                   prepare_dataset, run_seconds, select, tuning_records, tuning_state)
from .cells import page_data
from .page import CLAIMS_JSON, page_path, write_page

log = get_logger(__name__)

STAGES = ("tune", "final", "page", "all")


# -------------------------------------------------------------------- plan
def claims_plan(spec_path: str | Path, work: str | Path, *, out: str | Path | None = None,
                datasets: str | Sequence[str] | None = None, backbones: str | Sequence[str] | None = None,
                methods: str | Sequence[str] | None = None) -> list[dict]:
    """What is left of a claims study, per dataset (trains nothing, reads no data): ``tuning``: trials
    not finished in ``work`` nor committed under ``out`` (:func:`tuning_state`); ``final``: final runs
    whose selection is known and whose evidence is not committed (:func:`committed_final`); ``waiting``:
    final runs whose sweep (here or on the ``tune_from`` dataset) has not finished; ``cut``: the pairs
    the dataset does not run. ``work``, ``out``, ``datasets``, ``backbones`` and ``methods`` as for
    :func:`claims_study`.

    ``hours`` estimates the one-thread hours the tuning and final runs still need (:func:`seconds_left`:
    :func:`run_estimate` from the measured seconds of the committed runs, else of those finished in
    ``work``, less what a run in ``work`` has already spent); ``unestimated`` counts those with no
    estimate, and ``waiting`` runs are in neither. ``backbones`` splits the runs left (tuning and final,
    waiting ones not counted) by backbone: {backbone: {"runs", "hours", "unestimated", "methods"}}, for
    sharing the work among processes by backbone (two processes never train the same run then), and
    ``methods`` splits a backbone's by method alike ({method: {"runs", "hours", "unestimated"}}), for
    choosing what fits a session."""
    spec = load_claims_spec(spec_path)
    work = Path(work)
    out = Path(out) if out is not None else Path(spec_path).parent
    names, wanted = _chosen_runs(spec, datasets, backbones, methods)
    rows = {name: {"dataset": name, "tuning": 0, "final": 0, "waiting": 0, "cut": len(spec.datasets[name].cut),
                   "hours": 0.0, "unestimated": 0, "backbones": {}} for name in names}
    measured = measured_seconds(out, work)

    def add_left(run: tuple[str, str, str], folder: Path, trial: Mapping[str, Any]) -> None:
        left = seconds_left(measured, run, folder, trial)
        if left == 0.0:  # finished in work
            return
        row = rows[run[0]]
        part = row["backbones"].setdefault(run[1], {"runs": 0, "hours": 0.0, "unestimated": 0, "methods": {}})
        method = part["methods"].setdefault(run[2], {"runs": 0, "hours": 0.0, "unestimated": 0})
        for counts in (part, method):
            counts["runs"] += 1
        for counts in (row, part, method):
            if left is None:
                counts["unestimated"] += 1
            else:
                counts["hours"] += left / 3600

    for run in filter(wanted, spec.runs()):
        records, missing = tuning_state(spec, work, out, run)
        if spec.tuned_on(run) == run:
            rows[run[0]]["tuning"] += len(missing)
            for trial in missing:
                add_left(run, work / "tune" / trial["name"], trial)
        replicates = spec.replicates(run[0], run[1])
        if missing:
            rows[run[0]]["waiting"] += len(replicates)
            continue
        pending = pending_finals(spec, work, out, run, records)
        rows[run[0]]["final"] += len(pending)
        for trial in pending:
            add_left(run, work / "final" / trial["name"], trial)
    return list(rows.values())


def measured_seconds(out: Path, work: Path | None = None) -> dict[tuple[str, str, str], list[float]]:
    """The measured seconds (:func:`run_seconds`, as recorded) of every run committed under ``out`` by
    (dataset, backbone, method): its final runs (result.json) and tuning trials (selection.json, or
    tuning.json while a sweep is in progress). With ``work``, a (dataset, backbone, method) with no
    committed run takes those finished in ``work`` (its tuning and final runs, not yet committed by a
    page stage); never both, so no run counts twice."""
    from ...training import record
    seen: dict[tuple[str, str, str], list[float]] = {}
    root = Path(out) / EVIDENCE_DIR

    def add(folder: Path, seconds: Any) -> None:
        if isinstance(seconds, (int, float)) and seconds > 0:
            seen.setdefault(tuple(folder.relative_to(root).parts), []).append(float(seconds))

    for path in sorted(root.glob(f"*/*/*/*/{record.RESULT_FILE}")):
        add(path.parent.parent, json.loads(path.read_text(encoding="utf-8")).get("seconds"))
    for name in (SELECTION_JSON, TUNING_JSON):
        for path in sorted(root.glob(f"*/*/*/{name}")):
            for trial in json.loads(path.read_text(encoding="utf-8")).get("trials", []):
                add(path.parent, trial.get("seconds"))
    if work is not None:
        unmeasured: dict[tuple[str, str, str], list[float]] = {}
        for stage in ("tune", "final"):
            for path in sorted((Path(work) / stage).glob(f"*/*/*/*/{record.RESULT_FILE}")):
                key = tuple(path.parent.parent.relative_to(Path(work) / stage).parts)
                if key not in seen and (seconds := run_seconds(path.parent)) > 0:
                    unmeasured.setdefault(key, []).append(seconds)
        seen.update(unmeasured)
    return seen


def seconds_left(measured: Mapping[tuple[str, str, str], Sequence[float]], run: tuple[str, str, str],
                 folder: Path, trial: Mapping[str, Any]) -> float | None:
    """Seconds ``trial`` of ``run`` (dataset, backbone, method) still needs in its ``folder``: 0 when
    finished there, else :func:`run_estimate` less what a partial run has spent (:func:`run_seconds`);
    None without an estimate, or for a partial run already past it (how much more it needs is not known)."""
    status = trial_status(folder, trial)
    if status == "finished":
        return 0.0
    estimate = run_estimate(measured, run)
    left = None if estimate is None else estimate - (run_seconds(folder) if status == "partial" else 0.0)
    return left if left is not None and left > 0 else None


def check_hours(hours: Any, stage: str) -> None:
    """Refuse ``--hours`` that is not a number > 0, or given to a stage that trains nothing (page, plan)."""
    if hours is None:
        return
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not hours > 0:
        raise ConfigError(f"--hours: expected a number of hours > 0, got {hours!r}")
    if stage in ("page", "plan"):
        raise ConfigError(f"--hours: the {stage} stage trains nothing; use it with --stage tune, final or all")


def fit_in_hours(seconds: Sequence[float | None], hours: float, workers: int = 1) -> list[bool]:
    """Which runs to start, in order, so that each is expected to end within ``hours``: ``seconds`` is
    each run's expected time (:func:`seconds_left`; None: not known), ``workers`` run at a time and
    each started run takes the slot that frees first, as the runner hands them out. A run that would
    end later is left for a later call (a shorter run after it may still fit); one needing 0 s (finished)
    always starts and takes no time. A run whose time is not known starts when a slot is free before
    the end and keeps that slot to the end (a study with no measured run yet still starts; nothing is
    counted on finishing beside it)."""
    check_workers(workers)
    free = [0.0] * workers  # a heap of the times (seconds from now) the slots free
    budget, chosen = hours * 3600, []
    for need in seconds:
        start = free[0]
        if need == 0:  # finished already: the runner only skips it
            chosen.append(True)
            continue
        fits = start < budget if need is None else start + need <= budget
        if fits:
            heapq.heapreplace(free, budget if need is None else start + need)
        chosen.append(fits)
    return chosen


def run_estimate(measured: Mapping[tuple[str, str, str], Sequence[float]], run: tuple[str, str, str]
                 ) -> float | None:
    """Seconds one more run of ``run`` (dataset, backbone, method) should take, from ``measured``
    (:func:`measured_seconds`), the first of: the median of its own measured runs; the median of the
    same backbone and method on another dataset times how much longer this backbone's runs take here
    than there (the median ratio over its methods measured on both; the dataset sharing the most); the
    median of any method on this backbone and dataset; None. Backbones scale differently with a dataset
    (VBPR's cost grows with the feature width, LightGCN's with the graph), so no ratio crosses them."""
    median = {key: statistics.median(values) for key, values in measured.items() if values}
    if run in median:
        return median[run]
    dataset, backbone, method = run
    here = {key[1:]: value for key, value in median.items() if key[0] == dataset}
    best: tuple[int, float] | None = None
    for (other, b, m), value in median.items():
        if (b, m) != (backbone, method) or other == dataset:
            continue
        shared = [here[key[1:]] / v for key, v in median.items()
                  if key[0] == other and key[1] == backbone and key[1:] in here]
        if shared and (best is None or len(shared) > best[0]):
            best = (len(shared), value * statistics.median(shared))
    if best is not None:
        return best[1]
    same_backbone = [value for (b, _), value in here.items() if b == backbone]
    return statistics.median(same_backbone) if same_backbone else None


def _chosen_runs(spec: ClaimsSpec, datasets: str | Sequence[str] | None, backbones: str | Sequence[str] | None,
                 methods: str | Sequence[str] | None) -> tuple[list[str], Callable[[tuple[str, str, str]], bool]]:
    """The datasets that ``--datasets`` names, and whether a run (dataset, backbone, method) is on one of
    them with a backbone and a method that ``--backbones`` and ``--methods`` name (each None: all)."""
    names = _selected(datasets, list(spec.datasets), "dataset")
    chosen = set(_selected(backbones, list(dict.fromkeys(run[1] for run in spec.runs())), "backbone"))
    kept = set(_selected(methods, list(spec.methods), "method"))
    return names, lambda run: run[0] in names and run[1] in chosen and run[2] in kept


def _selected(value: str | Sequence[str] | None, known: Sequence[str], what: str) -> list[str]:
    """The ``known`` names that ``--{what}s`` names (names or comma-separated), or all of them."""
    if value is None:
        return list(known)
    return list(_names([s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else list(value),
                       f"--{what}s", list(known), what))


def pending_finals(spec: ClaimsSpec, work: Path, out: Path, run: tuple[str, str, str],
                   records: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The final trials of ``run`` (its selection from ``records``) whose evidence ``out`` does not hold."""
    finals = final_trials(spec, work, select(records), run)
    return [t for replicate, t in zip(spec.replicates(run[0], run[1]), finals)
            if not committed_final(out, run, replicate, t)]




# ------------------------------------------------------------------- study
@dataclass
class ClaimsResult:
    """What a claims study did: the page and claims.json, cells done and pending, failed trials, and the
    runs it did not start (``hours``)."""

    page: Path
    json: Path
    done: int
    pending: int
    failed: list[dict]
    deferred: int = 0  # runs not started: expected to end after ``hours``


def _shown_path(path: Path) -> str:
    """A path as the regenerating command shows it: relative to the working folder when inside it."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path.cwd())).as_posix() \
            if Path(path).resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def claims_study(spec_path: str | Path, work: str | Path, *, out: str | Path | None = None,
                 datasets: str | Sequence[str] | None = None, backbones: str | Sequence[str] | None = None,
                 methods: str | Sequence[str] | None = None, stage: str = "all", workers: int = 1,
                 backend: str = "local", hours: float | None = None,
                 on_result: Callable[[dict], None] | None = None) -> ClaimsResult:
    """Run the stages of the claims spec ``spec_path`` (see the module docstring).

    work: the folder of the runs (datasets with planted noise, tuning and final trials; never committed).
    out: the claims folder (evidence, claims.json; default the spec's folder); the page is ``<out>.md``.
    datasets: train only these (names or comma-separated); the page always covers every dataset.
    backbones: train only these backbones' runs (names or comma-separated; e.g. the cheap ones first).
    methods: train only these methods' runs (names or comma-separated), likewise.
    stage: ``tune``, ``final`` (for the runs whose tuning has finished), ``page`` (evidence and page;
    trains nothing and reads no data) or ``all``.
    hours: start only the runs expected to end within this many hours from the call (:func:`fit_in_hours`
    on :func:`seconds_left`, from the runs committed under ``out`` or finished in ``work``), in waves, so
    a run measured in one wave gives the next its estimate; for a session or job with a time limit. The
    others are left for a later call (``ClaimsResult.deferred``). None: every run, in one go.
    """
    if stage not in STAGES:
        raise ConfigError(f"--stage {stage!r}: stages are {', '.join(STAGES)}")
    check_hours(hours, stage)
    started = time.monotonic()
    spec = load_claims_spec(spec_path)
    work = Path(work)
    out = Path(out) if out is not None else Path(spec_path).parent
    names, wanted = _chosen_runs(spec, datasets, backbones, methods)
    runs = list(filter(wanted, spec.runs()))
    failed: list[dict] = []
    deferred = 0

    def run_within_hours(root: Path, trials: Sequence[tuple[tuple[str, str, str], dict]]) -> list[dict]:
        """Run the trials (each with its run): all, or with ``hours`` in waves of those that fit in the
        hours left (:func:`fit_in_hours`), each wave's estimates including the runs the last one finished
        (a run with no estimate keeps its worker, so the next wave knows its time); their records."""
        nonlocal deferred
        if hours is None:
            return run_trials(root, [trial for _, trial in trials], OBJECTIVE, backend=backend, workers=workers,
                              on_result=on_result)
        records, waiting = [], list(trials)
        while waiting:
            measured = measured_seconds(out, work)
            need = [seconds_left(measured, run, root / trial["name"], trial) for run, trial in waiting]
            fits = fit_in_hours(need, hours - (time.monotonic() - started) / 3600, workers)
            wave = [trial for (_, trial), fit in zip(waiting, fits) if fit]
            waiting = [pair for pair, fit in zip(waiting, fits) if not fit]
            if not wave:
                break
            records += run_trials(root, wave, OBJECTIVE, backend=backend, workers=workers, on_result=on_result)
        if waiting:
            log.info("claims: %d run(s) left for a later call, expected to end after --hours %g: %s",
                     len(waiting), hours, ", ".join(trial["name"] for _, trial in waiting))
        deferred += len(waiting)
        return records

    if stage in ("tune", "final", "all"):
        for name in names:
            prepare_dataset(spec.datasets[name], work)
    if stage in ("tune", "all"):
        tuned = list(filter(wanted, spec.tuned_runs()))
        trials = [(run, t) for run in tuned for t in tuning_state(spec, work, out, run)[1]]
        log.info("claims: tuning %d trials of %d (dataset, backbone, method) (finished or committed ones skipped)",
                 len(trials), len(tuned))
        records = run_within_hours(work / "tune", trials)
        failed += [r for r in records if r.get("status") == "failed"]
    if stage in ("final", "all"):
        trials = []
        for run in runs:
            records = tuning_records(spec, work, run, out)
            if records is None:
                source = spec.datasets[run[0]].tune_from
                log.info("claims: %s not tuned yet%s; its final runs wait", "/".join(run),
                         f" (it uses the selection on {source}, whose tuning has not finished)" if source else "")
                continue
            trials += [(run, t) for t in pending_finals(spec, work, out, run, records)]
        records = run_within_hours(work / "final", trials)
        failed += [r for r in records if r.get("status") == "failed"]
    json_path, page = out / CLAIMS_JSON, page_path(out)
    done = pending = 0
    if stage in ("page", "all"):
        log.info("claims: %d evidence folder(s) written", collect_evidence(spec, work, out))
        command = f"mmdenoise study claims --spec {_shown_path(Path(spec_path))} --work {_shown_path(work)}"
        if Path(out).resolve() != Path(spec_path).resolve().parent:
            command += f" --out {_shown_path(out)}"
        data = page_data(spec, out, command, f"mmdenoise report {_shown_path(out)}")
        json_path, page = write_page(data, out)
        cells = [c for claim in data["claims"] for c in claim["cells"]]
        done = sum(c["status"] == "done" for c in cells)
        pending = sum(c["status"] == "pending" for c in cells)
    return ClaimsResult(page, json_path, done, pending, failed, deferred)
