"""Trials and the one runner every sweep and study uses (docs/design.md, Contracts: Trials).

A trial is a JSON-safe dict: ``name`` (its run folder under the sweep or study
folder, :func:`trial_name` unless the study names it), ``params`` (what it
varies), the raw base ``config`` and its ``overrides``: (key, value) pairs with
typed values (``("train.lr", 1e-4)``), applied to the base in order by
its task's resolver (``config.resolve_run_config``, :func:`run_config`); the model's task decides the
trainer (``api.train`` hands sequential models to the sequential trainer).
``trial.json`` in the run folder holds the trial (overrides as ``[key, value]``
lists; ``key=value`` text in folders written before 0.1.0 means the same). A
trial whose folder has ``result.json`` is finished and skipped when the sweep
or study runs again (after an interruption); an unfinished one resumes from its
checkpoint; a folder holding another trial is refused before anything trains
(:func:`trial_status`). :func:`run_trial` is the one objective function: the
local backend calls it in this process or in a pool of processes, the Ray
backend (Ray Tune) calls it in Ray workers (:func:`run_trials`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from ..config import Override, override_pairs
from ..errors import ConfigError, MMDenoiseError
from ..log import get_logger

log = get_logger(__name__)

BACKENDS = ("local", "ray")
TRIAL_FILE = "trial.json"
ERROR_FILE = "error.txt"
#: override keys that name the run (applied first: the model decides which fields exist)
TOP_KEYS = ("task", "dataset", "model", "denoiser", "seed")


# ------------------------------------------------------------------- names
def param_text(value: Any) -> str:
    """A parameter value as trial names and sweep tables show it: a string as it is, anything else in
    YAML flow style (``1.0e-05``, ``[10, 20]``, ``true``, ``null``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)) or value is None:
        return _scalar_text((type(value), repr(value)), value)
    return _flow_text(value)


@functools.lru_cache(maxsize=4096)
def _scalar_text(key: tuple[type, str], value: bool | int | float | None) -> str:
    # keyed by type and repr: 1, 1.0 and True, or 0.0 and -0.0, are equal but print differently
    return _flow_text(value)


def _flow_text(value: Any) -> str:
    # dumped inside a one-item list, so that a plain scalar gets no document-end marker ("...")
    return yaml.safe_dump([value], default_flow_style=True, width=float("inf"))[1:-2]


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def trial_name(params: Mapping[str, Any]) -> str:
    """A folder name for a trial: readable ``key=value`` pairs (cut at 80 characters) + a stable hash.

    The hash (10 hex digits of SHA-256 over the sorted JSON of ``params``)
    makes the name unique and the same on every machine and run.
    """
    digest = hashlib.sha256(_canonical(dict(params)).encode("utf-8")).hexdigest()[:10]
    readable = "_".join(f"{str(k).rsplit('.', 1)[-1]}={param_text(v)}" for k, v in params.items())
    readable = re.sub(r"[^A-Za-z0-9._=+-]+", "-", readable)[:80].strip("-_.")
    return f"{readable}-{digest}" if readable else digest


@dataclass(frozen=True)
class Objective:
    """The validation metric a sweep selects on (``name@k``) and whether higher (max) is better."""

    metric: str = "recall@20"
    mode: str = "max"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


# ------------------------------------------------------------------ trials
def trial_defaults(objective: Objective) -> list[Override]:
    """Overrides every trial starts from (the spec's ``set`` comes after and may change them).

    One torch/BLAS thread per trial (parallel trials share the cores), no
    progress bars, and early stopping on the objective's metric.
    """
    return [("train.threads", 1), ("train.progress", False), ("train.valid_metric", objective.metric)]


def make_trial(params: Mapping[str, Any], base: Mapping[str, Any], overrides: Sequence[Override],
               name: str | None = None) -> dict:
    """A trial (JSON-safe dict): ``name`` (default :func:`trial_name` of ``params``), ``params``, the raw
    base ``config`` and its full ``overrides`` ((key, value) pairs)."""
    return {"name": trial_name(params) if name is None else name, "params": dict(params), "config": dict(base),
            "overrides": [tuple(pair) for pair in overrides]}


def _resolve(raw: Mapping[str, Any], overrides: Sequence[Override] = ()):
    """A raw run config (+ overrides) resolved by its task's resolver (``api.TASKS``): a RunConfig, or a
    SequentialRunConfig. The task is the config's own ``task`` (a stored sequential run) or else that of
    the model it names once the run-naming overrides are applied."""
    from ..api import TASKS, model_task
    from ..config import RunConfig
    named = {**raw, **{key: value for key, value in overrides if key in TOP_KEYS}}
    model = named.get("model", RunConfig.model)
    if not isinstance(model, str):
        raise ConfigError(f"model must be a name, got {model!r}")
    task = "sequential" if named.get("task") == "sequential" else model_task(model)
    return TASKS[task].resolve(raw, overrides)


def resolved_config(trial: Mapping[str, Any]):
    """The trial's fully resolved config: its base ``config`` with its overrides applied in order by its
    task's resolver (``config.resolve_run_config``): a RunConfig, or a SequentialRunConfig."""
    return _resolve(trial["config"], override_pairs(trial["overrides"]))


def run_config(trial: Mapping[str, Any]) -> dict:
    """The trial's run config as one mapping (:func:`resolved_config`, as ``config.yaml`` holds it)."""
    from ..config import to_dict
    return to_dict(resolved_config(trial))


def settings_key(config: Any) -> str:
    """A trial's identity on any machine: 16 hex digits of SHA-256 over its resolved config's
    result-deciding settings (``config.result_settings``), the dataset left out (a path on the machine
    that ran it). config: a resolved RunConfig / SequentialRunConfig (:func:`resolved_config`). Two runs
    with the same key trained the same thing, whatever their threads, progress bar or folders."""
    from ..config import result_settings, to_dict
    settings = {k: v for k, v in result_settings(type(config), to_dict(config)).items() if k != "dataset"}
    return hashlib.sha256(_canonical(settings).encode("utf-8")).hexdigest()[:16]


def stored_settings_key(run_dir: Path) -> str | None:
    """:func:`settings_key` of the config.yaml in ``run_dir`` (a run or evidence folder); None when it has
    none or it does not resolve (``training.folder.stored_config``)."""
    from ..training import folder as run_folder
    return run_folder.stored_config(Path(run_dir), lambda raw: settings_key(_resolve(raw)))


def validate_trial(trial: Mapping[str, Any], where: str) -> None:
    """Resolve the trial's config without training; a ConfigError names ``where`` otherwise."""
    try:
        resolved_config(trial)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _same_settings(stored: Mapping[str, Any], trial: Mapping[str, Any]) -> bool:
    """Whether ``trial.json``'s trial is ``trial`` but for its dataset: same params, base config (its
    ``dataset`` aside) and overrides (stored as pairs, or as ``key=value`` text by older versions:
    compared as the pairs they parse to)."""
    try:
        overrides = override_pairs(stored.get("overrides"))
    except ConfigError:
        return False
    return (_canonical([stored.get("params"), _without_dataset(stored.get("config")), overrides])
            == _canonical([trial["params"], _without_dataset(trial["config"]), override_pairs(trial["overrides"])]))


def _without_dataset(config: Mapping[str, Any] | None) -> dict:
    return {k: v for k, v in (config or {}).items() if k != "dataset"}


def _moved_dataset(folder: Path, theirs: Any, ours: Any) -> bool:
    """Whether the run in ``folder``, trained on the dataset folder ``theirs``, was trained on the dataset
    folder ``ours``, somewhere else: a study's work folder trained on another machine (a GPU's) or copied
    elsewhere names its data by that machine's path. The same folder name, and the data fingerprint its
    result.json records is ``ours``'s; a run without result.json (a checkpoint) passes on its name, as
    its resume checks the checkpoint's fingerprint against the data."""
    from ..training import record
    if not (isinstance(theirs, str) and isinstance(ours, str)) or Path(theirs).name != Path(ours).name \
            or not Path(ours).is_dir():
        return False
    if not (folder / record.RESULT_FILE).is_file():
        return True
    recorded = (record.read_result(folder).get("dataset") or {}).get("fingerprint")
    data = Path(ours).resolve()
    stamp = tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in data.iterdir() if f.is_file()))
    return recorded is not None and recorded == _fingerprint(str(data), stamp)


@functools.lru_cache(maxsize=8)
def _fingerprint(path: str, stamp: tuple) -> str:
    """The content fingerprint of the dataset folder ``path``, read once per process for each ``stamp``
    (its files' names, sizes and modification times: a folder rewritten since is read again)."""
    from ..data import load_dataset
    return load_dataset(path).fingerprint


def _holds_run_of(folder: Path, trial: Mapping[str, Any]) -> bool:
    """Whether a run folder without trial.json (a run trained directly, or by the sequential studies
    before they ran on this runner) holds the trial's run: its config.yaml has the same result-deciding
    settings, and names the same dataset (the same name, or a folder at the same place)."""
    from ..config import to_dict
    from ..training import folder as run_folder
    config = resolved_config(trial)
    stored = run_folder.stored_config(folder, lambda raw: to_dict(_resolve(raw)))
    if stored is None or run_folder.differences(stored, to_dict(config), type(config), ignore=("dataset",)):
        return False
    ours, theirs = Path(str(config.dataset)), Path(str(stored.get("dataset")))
    return str(ours) == str(theirs) or (ours.is_dir() and theirs.is_dir() and ours.resolve() == theirs.resolve())


def trial_status(folder: Path, trial: Mapping[str, Any]) -> str:
    """``new``, ``partial`` (a checkpoint to resume) or ``finished`` (result.json).

    A folder holding another trial (other parameters or other fixed
    settings, e.g. a changed spec) is a ConfigError, never silently reused.
    A run folder without trial.json is the trial's when its config.yaml
    says so (:func:`_holds_run_of`). A work folder moved or trained on
    another machine is still its trials' (:func:`_moved_dataset`).
    """
    from ..training import record
    marker = folder / TRIAL_FILE
    if marker.exists():
        stored = json.loads(marker.read_text(encoding="utf-8"))
        if not _same_settings(stored, trial):
            raise ConfigError(f"{folder} holds trial {stored.get('params')} run with other settings "
                              f"({stored.get('overrides')}); use another output folder or remove it")
        theirs, ours = (stored.get("config") or {}).get("dataset"), trial["config"].get("dataset")
        if theirs != ours and not _moved_dataset(folder, theirs, ours):
            raise ConfigError(f"{folder} holds this trial run on dataset {theirs}, which is not {ours} (missing "
                              "here, or other data: the fingerprint its result.json records differs); build that "
                              "dataset first, or remove the folder")
    elif ((folder / record.RESULT_FILE).exists() or (folder / record.CHECKPOINT_FILE).exists()) \
            and not _holds_run_of(folder, trial):
        raise ConfigError(f"{folder} holds a run that is not this trial (no {TRIAL_FILE}, other settings in its "
                          f"{record.CONFIG_FILE}); use another output folder or remove it")
    if (folder / record.RESULT_FILE).exists():
        return "finished"
    return "partial" if (folder / record.CHECKPOINT_FILE).exists() else "new"


def read_trial_record(root: str | Path, trial: Mapping[str, Any], objective: Objective) -> dict:
    """A trial's summary from its run folder: params, objective (validation), valid and test metrics."""
    from ..training import record
    folder = Path(root) / trial["name"]
    result = record.read_result(folder)
    if objective.metric not in result["valid"]:
        raise MMDenoiseError(f"{folder / record.RESULT_FILE}: no validation {objective.metric!r}")
    return {"name": trial["name"], "params": trial["params"],
            "objective": float(result["valid"][objective.metric]), "valid": result["valid"],
            "test": result["test"], "best_epoch": result.get("best_epoch"), "epochs_run": result.get("epochs_run"),
            "path": str(folder)}


def _failed(trial: Mapping[str, Any], folder: Path, error: str) -> dict:
    return {"name": trial["name"], "params": trial["params"], "objective": None, "status": "failed",
            "error": error, "path": str(folder)}


def run_trial(root: str | Path, trial: Mapping[str, Any], objective: Objective | Mapping[str, str]) -> dict:
    """The objective function of every backend: train one trial (or skip it) and return its record.

    root: the sweep (or study) folder; the trial's run folder is ``root/<name>``.
    A finished trial is not retrained (``status: skipped``); a partial one
    resumes from its checkpoint (``resumed``); otherwise it trains (``trained``).
    The record's ``objective`` is the validation metric of the best checkpoint.
    A training failure (MMDenoiseError) gives ``status: failed`` and ``error``.
    """
    from ..api import train
    from ..io import write_json, write_text
    if not isinstance(objective, Objective):
        objective = Objective(**objective)
    folder = Path(root) / trial["name"]
    status = trial_status(folder, trial)
    log.info("%s: %s", trial["name"], {"finished": "finished, skipped", "partial": "resuming",
                                       "new": "training"}[status])
    if status != "finished":
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / TRIAL_FILE, {k: trial[k] for k in ("name", "params", "config", "overrides")})
        try:
            train(config=run_config(trial), out=folder, resume=status == "partial")
        except MMDenoiseError as exc:
            write_text(folder / ERROR_FILE, f"{exc}\n")
            return _failed(trial, folder, str(exc))
        (folder / ERROR_FILE).unlink(missing_ok=True)
    return {**read_trial_record(root, trial, objective),
            "status": {"finished": "skipped", "partial": "resumed", "new": "trained"}[status]}


def _run_local(root: Path, trials: list[dict], objective: Objective, workers: int,
               on_result: Callable[[dict], None] | None) -> dict[str, dict]:
    records: dict[str, dict] = {}
    log.info("%d run%s in %s, %d at a time (finished runs are skipped)", len(trials),
             "" if len(trials) == 1 else "s", root, workers)
    if workers == 1:
        for trial in trials:
            records[trial["name"]] = run_trial(root, trial, objective)
            if on_result is not None:
                on_result(records[trial["name"]])
        return records
    import concurrent.futures
    import multiprocessing
    # spawn: a fresh interpreter per worker (a forked torch runtime is not safe to reuse)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(run_trial, str(root), trial, objective): trial["name"] for trial in trials}
        for future in concurrent.futures.as_completed(futures):
            records[futures[future]] = future.result()
            if on_result is not None:
                on_result(records[futures[future]])
    return records


def _ray_objective(config: dict, *, root: str, trials: dict, objective: dict) -> dict:
    """Ray Tune's trainable: :func:`run_trial` for the trial named ``config["trial"]``."""
    record = run_trial(root, trials[config["trial"]], objective)
    value = record["objective"]
    return {"objective": float("nan") if value is None else value, "status": record["status"]}


def _run_ray(root: Path, trials: list[dict], objective: Objective, workers: int,
             address: str | None) -> dict[str, dict]:
    """Run the trials as a Ray Tune grid over trial names, one CPU each, ``workers`` at a time.

    Without ``address`` a local Ray instance with ``workers`` CPUs is started
    (and stopped); with one, the cluster there is used. Trials write their run
    folders under ``root``, which cluster nodes must share (e.g. NFS).
    """
    from ..training import record
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigError("the ray backend needs Ray Tune: pip install 'mmdenoise[ray]'") from None
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        trainable = tune.with_parameters(_ray_objective, root=str(root), trials={t["name"]: t for t in trials},
                                         objective={"metric": objective.metric, "mode": objective.mode})
        run_config_cls = getattr(tune, "RunConfig", None)
        if run_config_cls is None:  # Ray < 2.41 keeps it in ray.train
            from ray.train import RunConfig as run_config_cls
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"trial": tune.grid_search([t["name"] for t in trials])},
            tune_config=tune.TuneConfig(max_concurrent_trials=workers, reuse_actors=True),
            run_config=run_config_cls(name=time.strftime("tune-%Y%m%d-%H%M%S"),
                                      storage_path=str(root / "ray"), verbose=0))
        grid = tuner.fit()
        errors = [f"{r.config.get('trial')}: {r.error}" for r in grid if r.error is not None]
        statuses = {r.config.get("trial"): (r.metrics or {}).get("status") for r in grid}
    finally:
        if started:
            ray.shutdown()
    if errors:
        raise MMDenoiseError("Ray trials failed:\n" + "\n".join(errors))
    # the records come from the run folders, exactly as the local backend reads them
    records = {}
    for trial in trials:
        folder = root / trial["name"]
        if (folder / record.RESULT_FILE).exists():
            records[trial["name"]] = {**read_trial_record(root, trial, objective),
                                      "status": statuses.get(trial["name"]) or "trained"}
        else:
            error = folder / ERROR_FILE
            message = (error.read_text(encoding="utf-8").strip() if error.exists()
                       else f"no result; see the Ray logs in {root / 'ray'}")
            records[trial["name"]] = _failed(trial, folder, message)
    return records


def check_workers(workers: Any) -> None:
    """Refuse a number of runs at a time that is not an integer >= 1 (ConfigError naming it)."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")


def run_trials(root: str | Path, trials: Sequence[dict], objective: Objective, *, backend: str = "local",
               workers: int = 1, address: str | None = None,
               on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Run (or skip, or resume) every trial under ``root``; return their records in ``trials`` order.

    backend: ``local`` (this process when ``workers`` is 1, else a pool of
        ``workers`` processes) or ``ray`` (Ray Tune, ``workers`` concurrent
        trials; ``address`` selects a cluster).
    on_result: called with each record as it arrives (local backend).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    check_workers(workers)
    if address is not None and backend != "ray":
        raise ConfigError("--address selects a Ray cluster; it needs --backend ray")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    _prepare_datasets(trials)
    for trial in trials:  # a clash with an existing folder fails before anything trains
        trial_status(root / trial["name"], trial)
    if backend == "local":
        records = _run_local(root, list(trials), objective, workers, on_result)
    else:
        records = _run_ray(root, list(trials), objective, workers, address)
    return [records[t["name"]] for t in trials]


def _prepare_datasets(trials: Sequence[dict]) -> None:
    """Resolve (and build, for a registered name) each dataset once, before workers race to build it."""
    from ..data.registry import resolve
    for dataset in sorted({resolved_config(t).dataset for t in trials}):
        resolve(dataset)


def best_record(records: Sequence[dict], objective: Objective) -> dict | None:
    """The record with the best objective (validation); the first in trial order on ties; None if none ran."""
    best = None
    for rec in records:
        value = rec.get("objective")
        if value is not None and (best is None or objective.better(value, best["objective"])):
            best = rec
    return best


def summary_record(record: Mapping[str, Any], keys: Sequence[str]) -> dict:
    """``keys`` of a trial record for a summary file, its ``path`` relative to the sweep or study folder.

    A trial's run folder is always ``<root>/<name>``, so the summary stays valid
    wherever the folder is moved or committed (no machine's absolute paths).
    """
    out = {k: record.get(k) for k in keys}
    if "path" in out:
        out["path"] = record["name"]
    return out



__all__ = ["Objective", "trial_name", "param_text", "make_trial", "trial_defaults", "run_config", "resolved_config",
           "validate_trial", "settings_key", "stored_settings_key", "trial_status", "read_trial_record", "run_trial",
           "run_trials", "best_record",
           "summary_record", "BACKENDS", "TRIAL_FILE"]
