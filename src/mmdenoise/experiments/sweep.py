"""Hyper-parameter sweeps: grid and random search over any config keys, selected on validation (DESIGN §7).

A sweep spec is a YAML file (read with the bounded safe loader, ``config.parse_yaml``)::

    dataset: synth-tiny              # registered name or folder (relative: next to the spec, then the cwd)
    model: lightgcn
    denoiser: none
    seed: 0
    config: base.yaml                # optional run config file (relative to the spec)
    set: {train.epochs: 50}          # fixed overrides: a mapping or a list of "key=value"
    space:                           # config key -> a grid (list) or one random distribution
      train.lr: [0.001, 0.01]
      n_layers: {choice: [1, 2, 3]}
      train.weight_decay: {loguniform: [1.0e-6, 1.0e-3]}
      lambda_au: {uniform: [0.0, 1.0]}
      ai_k: {int: [5, 20]}           # inclusive bounds
    samples: 4                       # random draws per grid point (needs a distribution in space)
    search_seed: 0                   # seed of the random draws
    objective: {metric: recall@20, mode: max}

Keys of ``space`` and ``set`` are override keys (``train.lr``, ``model.n_layers``,
bare ``n_layers``, ``denoiser``, ``seed``; see ``config.apply_overrides``).
The trials are the product of the grids, crossed with ``samples`` random draws
(each draw rounded to 6 significant digits).

One trial = one run folder ``<sweep>/<name>``, named from the trial's parameters
with a stable hash (:func:`trial_name`); ``trial.json`` in it holds the
parameters and the full overrides. A trial whose folder has ``result.json`` is
finished and skipped when the sweep runs again (after an interruption); an
unfinished one resumes from its checkpoint. :func:`run_trial` is the one
objective function: the local backend calls it in this process or in a pool of
processes, the Ray backend (Ray Tune) calls it in Ray workers. The best trial is
chosen on the validation metric only; the sweep writes ``sweep.json`` and
``sweep.md``. Noise studies and ablations (``experiments.study``) run their
cells through the same :func:`run_trials`.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import ConfigError, MMDenoiseError
from ..log import get_logger
from .tables import Cell, markdown

log = get_logger(__name__)

SPEC_KEYS = ("dataset", "model", "denoiser", "seed", "config", "set", "space", "samples", "search_seed",
             "objective")
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int")
OBJECTIVE_KEYS = ("metric", "mode")
MODES = ("max", "min")
BACKENDS = ("local", "ray")
TRIAL_FILE = "trial.json"
ERROR_FILE = "error.txt"
SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
_SIGNIFICANT_DIGITS = 6


# ------------------------------------------------------------------- values
def format_value(value: Any) -> str:
    """YAML text that ``yaml.safe_load`` reads back as ``value`` (for ``key=value`` overrides).

    Floats always get a dot and a signed exponent (``1e-05`` alone would be
    read as a string by YAML 1.1); strings are quoted.
    """
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            mantissa += "" if "." in mantissa else ".0"
            exponent = exponent if exponent[0] in "+-" else "+" + exponent
            text = f"{mantissa}e{exponent}"
        return text
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {format_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot use {value!r} ({type(value).__name__}) as a config value")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def trial_name(params: Mapping[str, Any]) -> str:
    """A folder name for a trial: readable ``key=value`` pairs (cut at 80 characters) + a stable hash.

    The hash (10 hex digits of SHA-256 over the sorted JSON of ``params``)
    makes the name unique and the same on every machine and run.
    """
    digest = hashlib.sha256(_canonical(dict(params)).encode("utf-8")).hexdigest()[:10]
    readable = "_".join(f"{str(k).rsplit('.', 1)[-1]}={v if isinstance(v, str) else format_value(v)}"
                        for k, v in params.items())
    readable = re.sub(r"[^A-Za-z0-9._=+-]+", "-", readable)[:80].strip("-_.")
    return f"{readable}-{digest}" if readable else digest


# -------------------------------------------------------------------- spec
@dataclass(frozen=True)
class Distribution:
    """A random search dimension: ``kind`` in DISTRIBUTIONS and its arguments (values or bounds)."""

    kind: str
    args: tuple

    def draw(self, rng) -> Any:
        """One value drawn with numpy Generator ``rng`` (floats rounded to 6 significant digits)."""
        if self.kind == "choice":
            return self.args[int(rng.integers(len(self.args)))]
        if self.kind == "int":
            return int(rng.integers(self.args[0], self.args[1] + 1))
        low, high = self.args
        if self.kind == "uniform":
            value = rng.uniform(low, high)
        else:
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        return float(f"{value:.{_SIGNIFICANT_DIGITS}g}")


@dataclass(frozen=True)
class Objective:
    """The validation metric a sweep selects on (``name@k``) and whether higher (max) is better."""

    metric: str = "recall@20"
    mode: str = "max"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b


@dataclass
class SweepSpec:
    """A validated sweep spec. ``base`` is the raw run config; ``overrides`` the fixed ``key=value`` list."""

    base: dict
    overrides: list[str]
    space: dict[str, list | Distribution]
    samples: int = 1
    search_seed: int = 0
    objective: Objective = field(default_factory=Objective)
    source: str = "spec"


def _check_metric(metric: Any, where: str) -> str:
    from ..eval.evaluator import DEFAULT_KS
    from ..eval.metrics import METRICS
    valid = [f"{m}@{k}" for m in METRICS for k in DEFAULT_KS]
    if metric not in valid:
        raise ConfigError(f"{where}: unknown metric {metric!r}; valid metrics: {', '.join(valid)}")
    return metric


def _parse_objective(raw: Any, where: str) -> Objective:
    if raw is None:
        return Objective()
    if isinstance(raw, str):
        raw = {"metric": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping {{metric: recall@20, mode: max}}, got {raw!r}")
    unknown = [k for k in raw if k not in OBJECTIVE_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(OBJECTIVE_KEYS)}")
    metric = _check_metric(raw.get("metric", "recall@20"), f"{where}.metric")
    mode = raw.get("mode", "max")
    if mode not in MODES:
        raise ConfigError(f"{where}.mode: must be one of {', '.join(MODES)}, got {mode!r}")
    return Objective(metric, mode)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _parse_dimension(key: str, raw: Any, where: str) -> list | Distribution:
    """A grid (non-empty list) or a Distribution from one ``space`` entry."""
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{where}: an empty grid; give at least one value")
        return list(raw)
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise ConfigError(f"{where}: expected a list of values (grid) or one distribution "
                          f"{{{' | '.join(DISTRIBUTIONS)}: [...]}}, got {raw!r}")
    kind, args = next(iter(raw.items()))
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: unknown distribution {kind!r}; "
                          f"valid distributions: {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}.{kind}: expected a non-empty list, got {args!r}")
    if kind == "choice":
        return Distribution(kind, tuple(args))
    if len(args) != 2:
        raise ConfigError(f"{where}.{kind}: expected [low, high], got {args!r}")
    low, high = args
    if kind == "int":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in args) or low > high:
            raise ConfigError(f"{where}.int: expected integers [low, high] with low <= high, got {args!r}")
        return Distribution(kind, (low, high))
    if not (_is_number(low) and _is_number(high)) or not low < high:
        raise ConfigError(f"{where}.{kind}: expected numbers [low, high] with low < high, got {args!r}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}.loguniform: bounds must be > 0, got {args!r}")
    return Distribution(kind, (float(low), float(high)))


def _overrides_list(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        return [f"{k}={format_value(v)}" for k, v in raw.items()]
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        return list(raw)
    raise ConfigError(f"{where}: expected a mapping {{key: value}} or a list of 'key=value', got {raw!r}")


def _resolve_dataset(value: str, spec_dir: Path | None) -> str:
    """A folder becomes absolute (looked up next to the spec first, then in the cwd); names stay."""
    from ..data.registry import DATASETS
    path = Path(value).expanduser()
    candidates = ([spec_dir / path] if spec_dir is not None and not path.is_absolute() else []) + [path]
    for candidate in candidates:
        if candidate.is_dir():
            return str(candidate.resolve())
    return value if value in DATASETS else str(path)


def parse_spec(raw: Any, source: str = "spec", spec_dir: Path | None = None) -> SweepSpec:
    """Validate a sweep spec mapping; every error names ``source`` and the key."""
    from ..config import load_yaml
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {raw!r}")
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; valid keys: {', '.join(SPEC_KEYS)}")
    base: dict = {}
    if raw.get("config") is not None:
        if not isinstance(raw["config"], str):
            raise ConfigError(f"{source}: config: expected a file name, got {raw['config']!r}")
        path = Path(raw["config"]).expanduser()
        if spec_dir is not None and not path.is_absolute():
            path = spec_dir / path
        base = load_yaml(path)
    for key, kind in (("dataset", str), ("model", str), ("denoiser", str), ("seed", int)):
        if key in raw:
            value = raw[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigError(f"{source}: {key}: expected a {kind.__name__}, got {value!r}")
            base[key] = value
    if isinstance(base.get("dataset"), str):
        base["dataset"] = _resolve_dataset(base["dataset"], spec_dir)
    overrides = _overrides_list(raw.get("set"), f"{source}: set")
    space_raw = raw.get("space")
    if not isinstance(space_raw, Mapping) or not space_raw:
        raise ConfigError(f"{source}: space: expected a non-empty mapping of config key -> grid list "
                          f"or distribution, got {space_raw!r}")
    space = {str(k): _parse_dimension(str(k), v, f"{source}: space.{k}") for k, v in space_raw.items()}
    samples = raw.get("samples", 1)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ConfigError(f"{source}: samples: expected an integer >= 1, got {samples!r}")
    if samples > 1 and not any(isinstance(d, Distribution) for d in space.values()):
        raise ConfigError(f"{source}: samples: {samples} random draws need a distribution in space "
                          f"({', '.join(DISTRIBUTIONS)}); a pure grid has one trial per point")
    search_seed = raw.get("search_seed", 0)
    if not isinstance(search_seed, int) or isinstance(search_seed, bool) or search_seed < 0:
        raise ConfigError(f"{source}: search_seed: expected a non-negative integer, got {search_seed!r}")
    objective = _parse_objective(raw.get("objective"), f"{source}: objective")
    return SweepSpec(base, overrides, space, samples, search_seed, objective, source)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec YAML file (safe loader); errors name the file and the key."""
    from ..config import read_yaml_file
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: sweep spec not found")
    return parse_spec(read_yaml_file(path), str(path), path.resolve().parent)


# ------------------------------------------------------------------ trials
def trial_defaults(objective: Objective) -> list[str]:
    """Overrides every trial starts from (the spec's ``set`` comes after and may change them).

    One torch/BLAS thread per trial (parallel trials share the cores), no
    progress bars, and early stopping on the objective's metric.
    """
    return ["train.threads=1", "train.progress=false", f"train.valid_metric={objective.metric}"]


def make_trial(params: Mapping[str, Any], base: Mapping[str, Any], overrides: Sequence[str]) -> dict:
    """A trial (JSON-safe dict): ``name``, ``params``, the raw base ``config`` and its full ``overrides``."""
    return {"name": trial_name(params), "params": dict(params), "config": dict(base),
            "overrides": list(overrides)}


def validate_trial(trial: Mapping[str, Any], where: str) -> None:
    """Resolve the trial's config without training; a ConfigError names ``where`` otherwise."""
    from ..api import resolve_config
    try:
        resolve_config(trial["config"], trial["overrides"])
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def expand(spec: SweepSpec, extra_overrides: Sequence[str] = ()) -> list[dict]:
    """The trials of ``spec`` in a fixed order (grid product × samples; duplicates dropped), validated.

    Each space key is first checked alone (so an error names the key), then
    every trial's full config is resolved.
    """
    import numpy as np
    fixed = trial_defaults(spec.objective) + list(spec.overrides) + list(extra_overrides)
    validate_trial({"config": spec.base, "overrides": fixed}, f"{spec.source}: base run")
    for key, dim in spec.space.items():
        first = dim[0] if isinstance(dim, list) else dim.args[0]
        validate_trial({"config": spec.base, "overrides": fixed + [f"{key}={format_value(first)}"]},
                       f"{spec.source}: space.{key}")
    grid_keys = [k for k, d in spec.space.items() if isinstance(d, list)]
    random_keys = [k for k, d in spec.space.items() if isinstance(d, Distribution)]
    rng = np.random.default_rng(spec.search_seed)
    trials, seen = [], set()
    for point in itertools.product(*(spec.space[k] for k in grid_keys)):
        for _ in range(spec.samples):
            drawn = {k: spec.space[k].draw(rng) for k in random_keys}
            params = {k: (dict(zip(grid_keys, point)) | drawn)[k] for k in spec.space}
            trial = make_trial(params, spec.base, fixed + [f"{k}={format_value(v)}" for k, v in params.items()])
            if trial["name"] in seen:
                continue
            seen.add(trial["name"])
            validate_trial(trial, f"{spec.source}: trial {params}")
            trials.append(trial)
    return trials


def _same_trial(stored: Mapping[str, Any], trial: Mapping[str, Any]) -> bool:
    keys = ("params", "config", "overrides")
    return _canonical({k: stored.get(k) for k in keys}) == _canonical({k: trial[k] for k in keys})


def trial_status(folder: Path, trial: Mapping[str, Any]) -> str:
    """``new``, ``partial`` (a checkpoint to resume) or ``finished`` (result.json).

    A folder holding another trial (other parameters or other fixed
    settings, e.g. a changed spec) is a ConfigError, never silently reused.
    """
    from ..training import record
    marker = folder / TRIAL_FILE
    if not marker.exists():
        if (folder / record.RESULT_FILE).exists():
            raise ConfigError(f"{folder} holds a run that is not a trial of this sweep (no {TRIAL_FILE})")
        return "new"
    stored = json.loads(marker.read_text(encoding="utf-8"))
    if not _same_trial(stored, trial):
        raise ConfigError(f"{folder} holds trial {stored.get('params')} run with other settings "
                          f"({stored.get('overrides')}); use another output folder or remove it")
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
            train(config=trial["config"], overrides=trial["overrides"], out=folder, resume=status == "partial")
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
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, got {workers!r}")
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
    from ..api import resolve_config
    from ..data.registry import resolve
    for dataset in sorted({resolve_config(t["config"], t["overrides"]).dataset for t in trials}):
        resolve(dataset)


def best_record(records: Sequence[dict], objective: Objective) -> dict | None:
    """The record with the best objective (validation); the first in trial order on ties; None if none ran."""
    best = None
    for rec in records:
        value = rec.get("objective")
        if value is not None and (best is None or objective.better(value, best["objective"])):
            best = rec
    return best


# ------------------------------------------------------------------- sweep
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
          workers: int = 1, address: str | None = None, overrides: Sequence[str] = (),
          on_result: Callable[[dict], None] | None = None) -> SweepResult:
    """Run the sweep described by ``spec`` (a file or a parsed spec) into ``out`` and write its summary.

    out: the sweep folder (default ``sweeps/<spec file stem>``; running again
        with the same folder resumes). overrides: extra fixed ``key=value``
        applied to every trial after the spec's ``set``.
    Returns a SweepResult; ``out/sweep.json`` and ``out/sweep.md`` list every
    trial's parameters and objective, and the best trial with its test metrics.
    """
    if not isinstance(spec, SweepSpec):
        path = Path(spec)
        spec = load_spec(path)
        out = out if out is not None else Path("sweeps") / path.stem
    if out is None:
        raise ConfigError("sweep: the output folder (out=...) is needed for a spec given as a mapping")
    trials = expand(spec, overrides)
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
        rows.append([str(rank), t["name"], *(v if isinstance(v, str) else format_value(v)
                                             for v in (t["params"][k] for k in keys)),
                     Cell("failed" if value is None else f"{value:.4f}", bold=best)])
    header = ["rank", "trial", *keys, f"valid {result.objective.metric}"]
    return markdown(header, rows, "rl" + "l" * len(keys) + "r") + "\n"


def summary_record(record: Mapping[str, Any], keys: Sequence[str]) -> dict:
    """``keys`` of a trial record for a summary file, its ``path`` relative to the sweep or study folder.

    A trial's run folder is always ``<root>/<name>``, so the summary stays valid
    wherever the folder is moved or committed (no machine's absolute paths).
    """
    out = {k: record.get(k) for k in keys}
    if "path" in out:
        out["path"] = record["name"]
    return out


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


__all__ = ["SweepSpec", "SweepResult", "Objective", "Distribution", "load_spec", "parse_spec", "expand",
           "run_trial", "run_trials", "sweep", "trial_name", "format_value", "best_record"]
