"""The claims spec: its YAML read into ``ClaimsSpec`` (datasets, methods and their grids, claims), every
error naming the file and the key, and the runs a spec implies (the package docstring has the format)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...config import Override, reject_unknown_keys
from ...errors import ConfigError, did_you_mean
from ...eval.pairing import DETECTION_AUC, LOCALISATION_GAIN
from ..runner import TOP_KEYS, Objective, validate_trial
from ..spec import SweepSpec, _overrides_list, _resolve_dataset, expand
from ..study import NOISE_KINDS, parse_seeds

SPEC_KEYS = ("title", "datasets", "budget", "seeds", "tune_seed", "search_seed", "set", "methods", "claims")
TITLE = "Do the papers' claims hold?"
DATASET_KEYS = ("name", "source", "noise", "set", "tune_from", "seeds", "splits", "cut", "why")
METHOD_KEYS = ("denoiser", "model", "grid", "selection_of", "set")
CLAIM_KEYS = ("id", "claim", "source", "kind", "method", "versus", "backbones", "against", "datasets")
KINDS = ("beats", "detects", "localises")
#: the backbone of a sequential method: the method is a whole model (``sequential.SEQUENTIAL_MODELS``)
SEQUENTIAL = "sequential"
#: the other side of a ``localises`` cell: the chance rate each user's gain is measured from
CHANCE = "chance"
#: the config key of a sequential run's user split
SPLIT_KEY = "sequence.split_seed"
#: selection: validation Recall@20, the only thing that chooses a configuration
OBJECTIVE = Objective("recall@20", "max")
METRICS = ("recall@20", "ndcg@20")
#: what a cell of each kind compares per user; the first decides the verdict
KIND_METRICS = {"beats": METRICS, "detects": (DETECTION_AUC,), "localises": (LOCALISATION_GAIN,)}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class ClaimData:
    """A dataset of the spec: ``name`` (its evidence folder), ``source`` (a registered name or an absolute
    folder; ``shown`` as the spec wrote it), ``noise`` (kind, modality, level, seed) or None,
    ``overrides``: fixed settings for this dataset's runs only, after the spec's ``set`` (e.g. an epoch
    cap where a run to convergence does not fit the budget), ``tune_from``: the earlier dataset whose
    selections this one's runs use (None: tuned here), ``seeds``: its final seeds (None: the spec's), and
    ``splits``: the user splits (``sequence.split_seed``) a sequential method's final runs take, each at
    every seed (None: the default split only; general backbones have no user split), ``cut``: the
    (backbone, method) pairs not run on this dataset, to fit the budget (their cells say so), and ``why``:
    the reasons for its seeds, transfer and cuts, said on the page ("" when none is given)."""

    name: str
    source: str
    shown: str
    noise: dict | None = None
    overrides: tuple[Override, ...] = ()
    tune_from: str | None = None
    seeds: tuple[int, ...] | None = None
    splits: tuple[int, ...] | None = None
    cut: tuple[tuple[str, str], ...] = ()
    why: str = ""


@dataclass(frozen=True)
class Method:
    """A compared method: a denoiser and its tuning grid (config key -> values); ``grid_size`` points.

    selection_of: another method whose selected configuration this one runs, with its own denoiser and
    ``overrides`` applied after the selected point (an ablation: a component removed from the
    configuration the full method was tuned at, as the papers' ablation tables do); it has no grid and no
    tuning trials of its own.
    overrides: fixed settings of every run of the method (after the spec's and the dataset's; a method
    with a grid may not fix a key it tunes).
    model: a sequential model (``denoiser`` is then ``none``): the method is the whole model and runs on
    the backbone :data:`SEQUENTIAL`.
    """

    name: str
    denoiser: str
    grid: dict
    selection_of: str | None = None
    overrides: tuple[Override, ...] = ()
    model: str | None = None

    @property
    def grid_size(self) -> int:
        return math.prod(len(values) for values in self.grid.values())


@dataclass(frozen=True)
class Claim:
    """``kind: beats``: every one of ``methods`` beats every one of ``versus``, on each backbone and dataset.
    ``kind: detects``: each of ``methods`` (a judge: a denoiser with interaction scores) finds the planted
    noise better, user by user, on each of ``backbones`` than on each of ``against``; ``versus`` is the
    same method there. ``kind: localises``: each of ``methods`` (a sequential model) finds the planted
    points of interest better than chance, user by user; ``versus`` is :data:`CHANCE`."""

    id: str
    text: str
    source: str
    kind: str
    methods: tuple[str, ...]
    versus: tuple[str, ...]
    backbones: tuple[str, ...]
    datasets: tuple[str, ...]
    against: tuple[str, ...] = ()

    def comparisons(self) -> list[tuple[str, str, str, str]]:
        """(method, versus, backbone, versus's backbone) of each row of the claim's table, in spec order."""
        if self.kind == "detects":
            return [(m, m, x, y) for m in self.methods for x in self.backbones for y in self.against]
        if self.kind == "localises":
            return [(m, CHANCE, x, x) for m in self.methods for x in self.backbones]
        return [(a, b, x, x) for a in self.methods for b in self.versus for x in self.backbones]


@dataclass
class ClaimsSpec:
    """A validated claims spec; ``path`` the file as given."""

    datasets: dict[str, ClaimData]
    budget: int
    seeds: list[int]
    methods: dict[str, Method]
    claims: list[Claim]
    overrides: list[Override] = field(default_factory=list)
    tune_seed: int = 0
    search_seed: int = 0
    path: str = "spec"
    title: str = TITLE

    def runs(self) -> list[tuple[str, str, str]]:
        """Every (dataset, backbone, method) a claim compares and its dataset does not cut, once each:
        datasets in spec order, then backbones in order of first mention, then methods in the order of
        ``methods``."""
        return self._ordered({(d, x, m) for c in self.claims for a, b, xa, xb in c.comparisons() for d in c.datasets
                              for x, m in ((xa, a), (xb, b)) if m != CHANCE and not self.is_cut((d, x, m))})

    def is_cut(self, run: tuple[str, str, str]) -> bool:
        """Whether ``run``'s dataset cuts its (backbone, method): not run there, to fit the budget."""
        return run[1:] in self.datasets[run[0]].cut

    def tuned_runs(self) -> list[tuple[str, str, str]]:
        """Every (dataset, backbone, method) that is tuned: the runs of a dataset without ``tune_from``,
        and for each run of one with it, the same (backbone, method) on its ``tune_from`` dataset; in the
        order of :meth:`runs`."""
        return self._ordered({self.tuned_on(run) for run in self.runs()})

    def tuned_on(self, run: tuple[str, str, str]) -> tuple[str, str, str]:
        """The tuning sweep that selects ``run``'s configuration: its own, or that of its dataset's
        ``tune_from`` for the same backbone, and of the method's ``selection_of`` for a method that has one."""
        dataset, backbone, method = run
        return (self.datasets[dataset].tune_from or dataset, backbone, self.methods[method].selection_of or method)

    def seeds_of(self, dataset: str) -> list[int]:
        """The final seeds of ``dataset``: its own ``seeds``, else the spec's."""
        own = self.datasets[dataset].seeds
        return list(own) if own is not None else list(self.seeds)

    def replicates(self, dataset: str, backbone: str) -> list[tuple[int | None, int]]:
        """The final runs of a (dataset, backbone) as (user split, seed): every seed of the dataset, on each
        of its ``splits`` for the :data:`SEQUENTIAL` backbone, else on no split of its own (None)."""
        return replicates_of(self.datasets[dataset].splits if backbone == SEQUENTIAL else None,
                             self.seeds_of(dataset))

    def trials_planned(self, method: str) -> int:
        """Tuning trials of ``method`` on a dataset tuned itself (0 for a method run at another's selection)."""
        m = self.methods[method]
        return 0 if m.selection_of else min(self.budget, m.grid_size)

    def grid_of(self, method: str) -> dict:
        """The grid whose points ``method``'s runs take: its own, or its ``selection_of``'s."""
        m = self.methods[method]
        return dict(self.methods[m.selection_of].grid if m.selection_of else m.grid)

    def _ordered(self, wanted: set[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
        backbones = list(dict.fromkeys(x for c in self.claims for x in (*c.backbones, *c.against)))
        return [(d, x, m) for d in self.datasets for x in backbones for m in self.methods if (d, x, m) in wanted]


def replicates_of(splits: Sequence[int] | None, seeds: Sequence[int]) -> list[tuple[int | None, int]]:
    """(user split, seed) of every final run: each seed on each split, or on no split (None) without splits."""
    return [(split, seed) for split in (splits or (None,)) for seed in seeds]


def _where(source: str, key: str) -> str:
    return f"{source}: {key}"


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _SAFE_NAME.match(value):
        raise ConfigError(f"{where}: expected a name of letters, digits and . _ + - (it names a folder), "
                          f"got {value!r}")
    return value


def _names(value: Any, where: str, known: Sequence[str], what: str) -> tuple[str, ...]:
    """A name or a non-empty list of distinct names, each one of ``known``."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{where}: expected a name or a non-empty list of names, got {value!r}")
    for item in items:
        if item not in known:
            raise ConfigError(f"{where}: unknown {what} {item!r}{did_you_mean(item, known)}; {what}s: "
                              f"{', '.join(known)}")
    if len(set(items)) != len(items):
        raise ConfigError(f"{where}: a name is repeated in {items}")
    return tuple(items)


def _non_negative(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}: expected a non-negative integer, got {value!r}")
    return value


def _parse_noise(raw: Any, where: str) -> dict:
    """``{add|remove: r, seed: s}`` or ``{swap|misalign: {MODALITY: r}, seed: s}``: one kind of noise."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping such as {{add: 0.2, seed: 1}}, got {raw!r}")
    reject_unknown_keys(raw, (*NOISE_KINDS, "seed"), where)
    kinds = [k for k in NOISE_KINDS if k in raw]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: give exactly one kind of noise ({', '.join(NOISE_KINDS)}), got {kinds}")
    kind, value, modality = kinds[0], raw[kinds[0]], None
    if kind in ("swap", "misalign"):
        if not isinstance(value, Mapping) or len(value) != 1:
            raise ConfigError(f"{where}.{kind}: expected one {{MODALITY: ratio}}, got {value!r}")
        modality, value = next(iter(value.items()))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"{where}.{kind}: expected a ratio in (0, 1], got {value!r}")
    return {"kind": kind, "modality": modality, "level": float(value),
            "seed": _non_negative(raw.get("seed", 0), f"{where}.seed")}


def _parse_dataset(raw: Any, where: str, spec_dir: Path | None) -> ClaimData:
    from ...data.registry import DATASETS
    if isinstance(raw, str):
        raw = {"source": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a name, a folder or {{name, source, noise}}, got {raw!r}")
    reject_unknown_keys(raw, DATASET_KEYS, where)
    shown = raw.get("source")
    if not isinstance(shown, str) or not shown:
        raise ConfigError(f"{where}.source: expected a registered dataset or a folder, got {shown!r}")
    source = _resolve_dataset(shown, spec_dir)
    if source not in DATASETS and not Path(source).is_dir():
        raise ConfigError(f"{where}.source: unknown dataset {shown!r}: neither a folder nor a registered name "
                          f"({', '.join(sorted(DATASETS))})")
    noise = _parse_noise(raw["noise"], f"{where}.noise") if raw.get("noise") is not None else None
    name = _name(raw.get("name", Path(shown).name), f"{where}.name")
    tune_from = _name(raw["tune_from"], f"{where}.tune_from") if raw.get("tune_from") is not None else None
    seeds = tuple(parse_seeds(raw["seeds"], f"{where}.seeds")) if raw.get("seeds") is not None else None
    splits = tuple(parse_seeds(raw["splits"], f"{where}.splits")) if raw.get("splits") is not None else None
    why = raw.get("why", "")
    if "why" in raw and not (isinstance(why, str) and why.strip()):
        raise ConfigError(f"{where}.why: expected text (why the dataset is run as it is), got {why!r}")
    return ClaimData(name, source, shown, noise, tuple(_fixed_settings(raw.get("set"), f"{where}.set")),
                     tune_from, seeds, splits, why=" ".join(why.split()))


def _parse_cut(raw: Any, where: str, backbones: Sequence[str], methods: Mapping[str, Method]
               ) -> tuple[tuple[str, str], ...]:
    """``{BACKBONE: [METHOD, ...] | all}``: the (backbone, method) pairs a dataset does not run.

    ``all`` is every method that runs on the backbone (the sequential models on :data:`SEQUENTIAL`, the
    denoisers on any other); a named method that never runs there is an error, not a silent no-op."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{where}: expected a mapping backbone -> a list of methods or 'all', got {raw!r}")
    pairs = []
    for backbone, cut in raw.items():
        _names(backbone, where, backbones, "backbone")
        runs_here = [m.name for m in methods.values() if (m.model is not None) == (backbone == SEQUENTIAL)]
        chosen = runs_here if cut == "all" else _names(cut, f"{where}.{backbone}", list(methods), "method")
        stray = [m for m in chosen if m not in runs_here]
        if stray:
            kind = "is not a sequential model" if backbone == SEQUENTIAL else "is a sequential model"
            raise ConfigError(f"{where}.{backbone}: method {stray[0]!r} {kind}, so it never runs on backbone "
                              f"{backbone!r}; methods that do: {', '.join(runs_here)}")
        pairs += [(backbone, m) for m in chosen]
    return tuple(pairs)


def _check_tune_from(datasets: Mapping[str, ClaimData], index: int, where: str) -> None:
    """The ``tune_from`` of the ``index``-th dataset names an earlier dataset of the spec that is tuned
    itself (a selection is transferred once, never along a chain)."""
    names = list(datasets)
    data = datasets[names[index]]
    source, earlier = data.tune_from, names[:index]
    if source is None:
        return
    if source not in datasets:
        raise ConfigError(f"{where}: {data.name!r} names unknown dataset {source!r}; datasets: {', '.join(names)}")
    if source == data.name:
        raise ConfigError(f"{where}: {source!r} cannot be tuned on itself; name an earlier dataset, tuned itself "
                          f"({', '.join(earlier) or 'none'})")
    if source not in earlier:
        raise ConfigError(f"{where}: {source!r} is not before {data.name!r} in the list; name an earlier dataset, "
                          f"tuned itself ({', '.join(earlier) or 'none'})")
    if datasets[source].tune_from is not None:
        raise ConfigError(f"{where}: {data.name!r} names {source!r}, which is itself tuned on "
                          f"{datasets[source].tune_from!r}; selections are not chained: name the dataset that is tuned")


def _fixed_settings(raw: Any, where: str) -> list[Override]:
    """A ``set`` mapping as (key, value) overrides; the keys the spec decides itself are refused."""
    overrides = _overrides_list(raw, where)
    for key, _ in overrides:
        if key in TOP_KEYS:
            raise ConfigError(f"{where}.{key}: the spec decides {key} (datasets, claims, methods, seeds)")
    return overrides


def _parse_method(name: str, raw: Any, where: str) -> Method:
    from ...denoise import DENOISERS
    from ...sequential import SEQUENTIAL_MODELS
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected {{denoiser: NAME, grid: {{key: [values]}}}} or {{denoiser: NAME, "
                          f"selection_of: METHOD, set: {{key: value}}}}, got {raw!r}")
    reject_unknown_keys(raw, METHOD_KEYS, where)
    if ("denoiser" in raw) == ("model" in raw):
        raise ConfigError(f"{where}: give one of denoiser (a denoiser around the claims' backbones) or model "
                          f"(a sequential model, run on backbone {SEQUENTIAL!r}), got {sorted(raw)}")
    model = raw.get("model")
    if "model" in raw and model not in SEQUENTIAL_MODELS:
        raise ConfigError(f"{where}.model: unknown sequential model {model!r}; sequential models: "
                          f"{', '.join(SEQUENTIAL_MODELS)}")
    denoiser = raw.get("denoiser", "none")
    if denoiser not in DENOISERS:
        raise ConfigError(f"{where}.denoiser: unknown denoiser {denoiser!r}; denoisers: {', '.join(DENOISERS)}")
    grid_raw = raw.get("grid") or {}
    if not isinstance(grid_raw, Mapping):
        raise ConfigError(f"{where}.grid: expected a mapping of config key -> list of values, got {grid_raw!r}")
    grid = {}
    for key, values in grid_raw.items():
        if key in TOP_KEYS:
            raise ConfigError(f"{where}.grid.{key}: the spec decides {key}; tune the method's own settings")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.grid.{key}: expected a non-empty list of values, got {values!r}")
        grid[str(key)] = list(values)
    selection_of = _name(raw["selection_of"], f"{where}.selection_of") if raw.get("selection_of") is not None \
        else None
    if selection_of is not None and grid:
        raise ConfigError(f"{where}.grid: a method with selection_of runs {selection_of!r}'s selected configuration "
                          "and is not tuned itself; give its fixed changes under set")
    return Method(name, denoiser, grid, selection_of, tuple(_fixed_settings(raw.get("set"), f"{where}.set")), model)


def _check_selection_of(methods: Mapping[str, Method], where: str) -> None:
    """Each ``selection_of`` names another method of the spec that is tuned itself (no chains), and a
    tuned method's ``set`` does not fix a key its grid tunes (the selected value would replace it; an
    ablation's ``set`` comes after the selected point and changes it on purpose)."""
    for m in methods.values():
        at = f"{where}.{m.name}"
        source = methods.get(m.selection_of) if m.selection_of else m
        if source is None:
            raise ConfigError(f"{at}.selection_of: unknown method {m.selection_of!r}; methods: {', '.join(methods)}")
        if source.name == m.name and m.selection_of:
            raise ConfigError(f"{at}.selection_of: {m.name!r} cannot run its own selection; name a method with a grid")
        if source.selection_of:
            raise ConfigError(f"{at}.selection_of: {source.name!r} runs {source.selection_of!r}'s selection itself; "
                              "selections are not chained: name the method that is tuned")
        if (source.model is None) != (m.model is None):
            raise ConfigError(f"{at}.selection_of: {m.name!r} and {source.name!r} must both be sequential models or "
                              "both denoisers (a selection is a point of the other's grid)")
        for key, _ in m.overrides if not m.selection_of else ():
            if key in m.grid:
                raise ConfigError(f"{at}.set.{key}: {m.name!r} tunes {key}; a fixed value would be replaced by the "
                                  "selected one (an ablation with selection_of changes a selected value)")


#: per kind: (the key it needs, the keys it refuses); ``localises`` compares with chance, needing neither
KIND_SIDES = {"beats": (("versus",), ("against",)), "detects": (("against",), ("versus",)),
              "localises": ((), ("versus", "against"))}


def _parse_claim(raw: Any, where: str, datasets: Sequence[str], methods: Mapping[str, Method]) -> Claim:
    from ...models import MODELS
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(CLAIM_KEYS)}, got {raw!r}")
    reject_unknown_keys(raw, CLAIM_KEYS, where)
    for key in ("id", "claim", "source", "kind", "method", "backbones"):
        if key not in raw:
            raise ConfigError(f"{where}: missing key {key!r}")
    cid = _name(raw["id"], f"{where}.id")
    for key in ("claim", "source"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise ConfigError(f"{where}.{key}: expected text, got {raw[key]!r}")
    kind = raw["kind"]
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: unknown kind {kind!r}; kinds: {', '.join(KINDS)}")
    # beats compares methods on one backbone (versus), detects one judge on two backbones (against),
    # localises a sequential model with chance
    needs, refuses = KIND_SIDES[kind]
    for key in needs:
        if key not in raw:
            raise ConfigError(f"{where}: missing key {key!r} (kind {kind})")
    for key in refuses:
        if key in raw:
            how = f"by {needs[0]}, not {key}" if needs else "with chance, by neither versus nor against"
            raise ConfigError(f"{where}.{key}: kind {kind} compares {how}")
    general = [m for m, entry in MODELS.items() if entry.task == "general"]
    a = _names(raw["method"], f"{where}.method", list(methods), "method")
    backbones = _names(raw["backbones"], f"{where}.backbones", [*general, SEQUENTIAL], "backbone")
    against: tuple[str, ...] = ()
    if kind == "beats":
        b = _names(raw["versus"], f"{where}.versus", list(methods), "method")
        if set(a) & set(b):
            raise ConfigError(f"{where}: {sorted(set(a) & set(b))} is on both sides of the claim")
    elif kind == "detects":
        b = a
        against = _names(raw["against"], f"{where}.against", general, "backbone")
        if set(backbones) & set(against):
            raise ConfigError(f"{where}: {sorted(set(backbones) & set(against))} is on both sides of the claim")
    else:
        b = (CHANCE,)
    _check_task(where, kind, backbones, [methods[m] for m in dict.fromkeys((*a, *b)) if m in methods])
    on = _names(raw["datasets"], f"{where}.datasets", list(datasets), "dataset") if "datasets" in raw \
        else tuple(datasets)
    return Claim(cid, raw["claim"].strip(), raw["source"].strip(), kind, a, b, backbones, on, against)


def _check_task(where: str, kind: str, backbones: Sequence[str], methods: Sequence[Method]) -> None:
    """A claim is about sequential models (backbone :data:`SEQUENTIAL` alone, every method a ``model``) or
    about denoisers around general backbones; ``localises`` only about the first, ``detects`` only the second."""
    sequential = [m.name for m in methods if m.model is not None]
    if SEQUENTIAL in backbones:
        if len(backbones) > 1:
            raise ConfigError(f"{where}.backbones: {SEQUENTIAL!r} (the backbone of sequential models) is not "
                              f"compared beside general backbones, got {list(backbones)}")
        denoisers = [m.name for m in methods if m.model is None]
        if denoisers:
            raise ConfigError(f"{where}: method {denoisers[0]!r} is a denoiser; on backbone {SEQUENTIAL!r} every "
                              "method is a sequential model (methods.NAME.model)")
        if kind == "detects":
            raise ConfigError(f"{where}.kind: detects compares a denoiser's judgement on two general backbones; "
                              f"sequential models have none (localises measures theirs)")
    else:
        if sequential:
            raise ConfigError(f"{where}: method {sequential[0]!r} is a sequential model; its claims name "
                              f"backbones: [{SEQUENTIAL}]")
        if kind == "localises":
            raise ConfigError(f"{where}.backbones: localises measures a sequential model's interest scores; "
                              f"name backbones: [{SEQUENTIAL}]")


def parse_claims_spec(raw: Any, path: str = "spec", spec_dir: Path | None = None) -> ClaimsSpec:
    """Validate a claims spec mapping; every error names ``path`` and the key. Each method's grid is
    resolved on each backbone it runs on (no data is read), so a misspelt grid key fails here."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {raw!r}")
    reject_unknown_keys(raw, SPEC_KEYS, path)
    for key in ("datasets", "budget", "seeds", "methods", "claims"):
        if key not in raw:
            raise ConfigError(f"{path}: missing key {key!r}")
    if not isinstance(raw["datasets"], list) or not raw["datasets"]:
        raise ConfigError(f"{path}: datasets: expected a non-empty list, got {raw['datasets']!r}")
    datasets: dict[str, ClaimData] = {}
    for i, entry in enumerate(raw["datasets"]):
        data = _parse_dataset(entry, _where(path, f"datasets[{i}]"), spec_dir)
        if data.name in datasets:
            raise ConfigError(f"{path}: datasets[{i}].name: {data.name!r} is used twice")
        datasets[data.name] = data
    for i in range(len(datasets)):
        _check_tune_from(datasets, i, _where(path, f"datasets[{i}].tune_from"))
    budget = raw["budget"]
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ConfigError(f"{path}: budget: expected an integer >= 1 (tuning trials per backbone and method), "
                          f"got {budget!r}")
    seeds = parse_seeds(raw["seeds"], _where(path, "seeds"))
    overrides = _fixed_settings(raw.get("set"), _where(path, "set"))
    if not isinstance(raw["methods"], Mapping) or not raw["methods"]:
        raise ConfigError(f"{path}: methods: expected a mapping name -> {{denoiser, grid}}, got {raw['methods']!r}")
    methods = {_name(k, _where(path, f"methods.{k}")): _parse_method(k, v, _where(path, f"methods.{k}"))
               for k, v in raw["methods"].items()}
    _check_selection_of(methods, _where(path, "methods"))
    if not isinstance(raw["claims"], list) or not raw["claims"]:
        raise ConfigError(f"{path}: claims: expected a non-empty list, got {raw['claims']!r}")
    claims = [_parse_claim(c, _where(path, f"claims[{i}]"), list(datasets), methods)
              for i, c in enumerate(raw["claims"])]
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: claims: an id is repeated in {ids}")
    backbones = list(dict.fromkeys(x for c in claims for x in (*c.backbones, *c.against)))
    for i, entry in enumerate(raw["datasets"]):
        if isinstance(entry, Mapping) and entry.get("cut") is not None:
            name = list(datasets)[i]
            datasets[name] = replace(datasets[name], cut=_parse_cut(entry["cut"], _where(path, f"datasets[{i}].cut"),
                                                                    backbones, methods))
    spec = ClaimsSpec(datasets, budget, seeds, methods, claims, overrides,
                      _non_negative(raw.get("tune_seed", 0), _where(path, "tune_seed")),
                      _non_negative(raw.get("search_seed", 0), _where(path, "search_seed")), path,
                      _title(raw.get("title", TITLE), _where(path, "title")))
    for dataset, backbone, method in dict.fromkeys([*spec.tuned_runs(), *spec.runs()]):
        first = expand(tune_spec(spec, dataset, backbone, method))[0]
        if spec.methods[method].selection_of:
            validate_trial({"config": first["config"], "overrides": first["overrides"] + after_selection(spec, method)},
                           f"{path}: methods.{method}.set on {backbone}")
    return spec


def _title(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value.strip():
        raise ConfigError(f"{where}: expected one line of text (the page's heading), got {value!r}")
    return value.strip()


def load_claims_spec(path: str | Path) -> ClaimsSpec:
    """Read and validate a claims spec YAML file (bounded safe loader); errors name the file and the key."""
    from ...config import read_yaml_file
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: claims spec not found")
    return parse_claims_spec(read_yaml_file(path), str(path), path.resolve().parent)


def tune_spec(spec: ClaimsSpec, dataset: str, backbone: str, method: str, arg: str | None = None) -> SweepSpec:
    """The sweep of one (dataset, backbone, method): the method's grid (its ``selection_of``'s for a
    method that has one: the same points, with this method's denoiser), at most ``budget`` points, every
    trial at ``tune_seed`` with the spec's fixed settings, then the dataset's, then the method's, selected
    on validation Recall@20. dataset: the spec's name; arg: what the runs name as their dataset (default:
    the name). A sequential method (backbone :data:`SEQUENTIAL`) runs its model, on the default user split."""
    m = spec.methods[method]
    base = {"dataset": dataset if arg is None else arg, "seed": spec.tune_seed,
            **({"model": m.model} if m.model is not None else {"model": backbone, "denoiser": m.denoiser})}
    overrides = [*spec.overrides, *spec.datasets[dataset].overrides, *([] if m.selection_of else m.overrides)]
    return SweepSpec(base, overrides, spec.grid_of(method), 1, spec.search_seed, OBJECTIVE,
                     f"{spec.path}: methods.{method} on {backbone}", spec.budget)


def after_selection(spec: ClaimsSpec, method: str) -> list[Override]:
    """The settings a method applies after its selected point: an ablation's (``selection_of``) ``set``."""
    m = spec.methods[method]
    return list(m.overrides) if m.selection_of else []
