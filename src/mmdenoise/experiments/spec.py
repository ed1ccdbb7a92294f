"""Sweep specs: parsing and validating a spec, and expanding it into trials.

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
    search_seed: 0                   # seed of the random draws (and of the budget's subset)
    budget: 8                        # optional: at most this many trials, a reproducible subset
    objective: {metric: recall@20, mode: max}

Keys of ``space`` and ``set`` are override keys (``train.lr``, ``model.n_layers``,
bare ``n_layers``, ``denoiser``, ``seed``; see ``config.apply_overrides``).
The trials are the product of the grids, crossed with ``samples`` random draws
(each draw rounded to 6 significant digits). With ``budget`` N, at most N of
them run: a subset drawn without replacement under ``search_seed`` (kept in
expansion order), the same subset for the same space on any base run, so
that several backbones tuned with one space and budget try the same points.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from ..config import Override, override_pairs, reject_unknown_keys
from .runner import Objective, make_trial, trial_defaults, validate_trial

SPEC_KEYS = ("dataset", "model", "denoiser", "seed", "config", "set", "space", "samples", "search_seed",
             "budget", "objective")
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "int")
OBJECTIVE_KEYS = ("metric", "mode")
MODES = ("max", "min")
_SIGNIFICANT_DIGITS = 6


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


@dataclass
class SweepSpec:
    """A validated sweep spec. ``base`` is the raw run config; ``overrides`` the fixed (key, value) pairs."""

    base: dict
    overrides: list[Override]
    space: dict[str, list | Distribution]
    samples: int = 1
    search_seed: int = 0
    objective: Objective = field(default_factory=Objective)
    source: str = "spec"
    budget: int | None = None



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
    reject_unknown_keys(raw, OBJECTIVE_KEYS, where)
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
        same = lambda a, b: a == b and isinstance(a, bool) == isinstance(b, bool)  # noqa: E731 (1 is not true)
        repeated = [v for i, v in enumerate(raw) if any(same(v, w) for w in raw[:i])]
        if repeated:
            raise ConfigError(f"{where}: {repeated[0]!r} is listed more than once in the grid {raw!r} "
                              "(a repeat is one trial; a typo?)")
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


def _overrides_list(raw: Any, where: str) -> list[Override]:
    """The spec's ``set`` as (key, value) pairs: a mapping's items as they are, ``key=value`` text parsed."""
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        return [(str(k), v) for k, v in raw.items()]
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        try:
            return override_pairs(raw)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
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
    dotted = [k for k in raw if isinstance(k, str) and "." in k]
    if dotted:  # a run setting written beside the spec's own keys
        raise ConfigError(f"{source}: {dotted[0]!r} is a run setting, not a spec key: a fixed one goes under "
                          f"`set:` ({{{dotted[0]}: ...}}), a searched one under `space:`")
    reject_unknown_keys(raw, SPEC_KEYS, source)
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
    budget = raw.get("budget")
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 1):
        raise ConfigError(f"{source}: budget: expected an integer >= 1 (trials at most), got {budget!r}")
    objective = _parse_objective(raw.get("objective"), f"{source}: objective")
    return SweepSpec(base, overrides, space, samples, search_seed, objective, source, budget)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec YAML file (safe loader); errors name the file and the key."""
    from ..config import read_yaml_file
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: sweep spec not found")
    return parse_spec(read_yaml_file(path), str(path), path.resolve().parent)


def expand(spec: SweepSpec, extra_overrides: Sequence[Override] = ()) -> list[dict]:
    """The trials of ``spec`` in a fixed order (grid product × samples; duplicates dropped; at most
    ``spec.budget`` of them, :func:`budget_subset`), validated.

    A trial's overrides are the defaults, the spec's ``set``, ``extra_overrides``
    and then its own parameters, all (key, value) pairs: a value reaches the
    run config exactly as the spec (or the random draw) gave it. Each space key
    is first checked alone (so an error names the key), then every trial's full
    config is resolved.
    """
    import numpy as np
    fixed = trial_defaults(spec.objective) + list(spec.overrides) + list(extra_overrides)
    validate_trial({"config": spec.base, "overrides": fixed}, f"{spec.source}: base run")
    for key, dim in spec.space.items():
        first = dim[0] if isinstance(dim, list) else dim.args[0]
        validate_trial({"config": spec.base, "overrides": fixed + [(key, first)]},
                       f"{spec.source}: space.{key}")
    grid_keys = [k for k, d in spec.space.items() if isinstance(d, list)]
    random_keys = [k for k, d in spec.space.items() if isinstance(d, Distribution)]
    rng = np.random.default_rng(spec.search_seed)
    trials, seen = [], set()
    for point in itertools.product(*(spec.space[k] for k in grid_keys)):
        for _ in range(spec.samples):
            drawn = {k: spec.space[k].draw(rng) for k in random_keys}
            params = {k: (dict(zip(grid_keys, point)) | drawn)[k] for k in spec.space}
            trial = make_trial(params, spec.base, fixed + list(params.items()))
            if trial["name"] in seen:
                continue
            seen.add(trial["name"])
            trials.append(trial)
    trials = budget_subset(trials, spec.budget, spec.search_seed)
    for trial in trials:
        validate_trial(trial, f"{spec.source}: trial {trial['params']}")
    return trials


def budget_subset(trials: list[dict], budget: int | None, search_seed: int) -> list[dict]:
    """At most ``budget`` of ``trials``, drawn without replacement under ``search_seed`` and kept in
    their order; all of them when they are no more than the budget (or it is None).

    The draw depends only on the number of trials, the budget and the seed, so one space expanded
    on several base runs (backbones, datasets) gives the same points on each.
    """
    import numpy as np
    if budget is None or len(trials) <= budget:
        return list(trials)
    chosen = np.random.default_rng([search_seed, len(trials), budget]).choice(len(trials), budget, replace=False)
    return [trials[i] for i in sorted(chosen.tolist())]


__all__ = ["SweepSpec", "Distribution", "load_spec", "parse_spec", "expand", "budget_subset"]
