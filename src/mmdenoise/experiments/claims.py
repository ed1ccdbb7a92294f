"""Do the papers' claims hold? One benchmark with a fair protocol and its evidence committed (DESIGN §7).

A claims spec (YAML, read with the bounded safe loader; unknown keys refused, every error names the
file and the key)::

    datasets:                       # a registered name or folder as it is, or a copy with planted noise
      - {name: ml-100k-add20, source: ml-100k, noise: {add: 0.2, seed: 1}}
      - name: ml-1m-add20
        source: ml-1m
        noise: {add: 0.2, seed: 1}
        set: {train.epochs: 300}    # fixed overrides for this dataset's runs only, after the spec's
        tune_from: ml-100k-add20    # no tuning here: each (backbone, method) runs the selection made there
        seeds: [1]                  # this dataset's final seeds (default: the spec's)
        cut: {lightgcn: [rce, wbpr]}  # (backbone, method) pairs not run here (or BACKBONE: all); cells say "cut"
    budget: 8                       # tuning trials per (dataset, backbone, method), at most
    seeds: [1, 2, 3]                # the final runs of each selected configuration
    tune_seed: 0                    # the training seed of every tuning trial
    search_seed: 0                  # which grid points a budget smaller than the grid draws
    title: Do the papers' claims hold?   # the page's heading (this is the default)
    set: {train.patience: 10}       # fixed overrides for every run (never model, denoiser, dataset, seed)
    methods:                        # name -> a denoiser and the grid its paper tunes (sweep-spec keys)
      none: {denoiser: none}
      tce: {denoiser: tce, grid: {denoiser_params.drop_rate: [0.05, 0.1, 0.2]}}
    claims:
      - id: tce-beats-none
        claim: T-CE beats the bare backbone under added noise
        source: Wang et al., WSDM'21
        kind: beats                 # every method beats every versus, on each backbone and dataset
        method: tce                 # a name or a list
        versus: none                # a name or a list
        backbones: [lightgcn]
        datasets: [ml-100k-add20]   # optional: every dataset
      - id: loss-detects-in-id-space
        claim: the loss judges the planted noise better on an ID backbone than on a multi-modal one
        source: GUIDER, §3.2
        kind: detects               # each user's noise-detection AUC of the same judge, two backbones
        method: tce                 # a denoiser with interaction scores
        backbones: [lightgcn]       # better here ...
        against: [freedom]          # ... than here (no versus)

:func:`claims_study` runs it in stages, each resumable (finished trials are skipped, partial ones
resume, through the one runner), and ``<out>`` is what carries it across machines: a trial whose
record (tuning.json, selection.json) or evidence is committed there with the same settings key
(``runner.settings_key``) is not trained again (:func:`tuning_state`, :func:`committed_final`):

1. tune: per (dataset, backbone, method) a sweep over the method's grid, min(budget, grid size)
   trials (``spec.budget_subset``: the same points for every backbone and dataset) at
   ``tune_seed``, selected on validation Recall@20 alone (:func:`select`). A dataset with
   ``tune_from`` (an earlier dataset of the list, tuned itself) is not tuned: each of its (backbone,
   method) takes the grid point selected on that dataset for the same (backbone, method), so every
   method still has the same tuning budget (where large datasets cannot afford a sweep each);
2. final: the selected configuration at every seed of the dataset's ``seeds`` (else the spec's), with
   the spec's and the dataset's fixed settings; it waits (a log line says why) until the sweep that
   selects it has finished, on the dataset itself or on its ``tune_from``;
3. evidence: for every final run, under ``<out>/evidence/<dataset>/<backbone>/<method>/s<seed>/``,
   ``per_user.npz`` (users, test Recall@20 and NDCG@20), ``config.yaml`` (the run's resolved
   config, the dataset named as in the spec) and a small ``result.json`` (what pairing checks:
   the data condition), and ``selection.json`` (the dataset tuned on, the trials tried there, their
   validation objective, the one selected; a ``tune_from`` dataset lists no trials of its own)
   beside them, or ``tuning.json`` (the finished trials) while a sweep is in progress;
4. page: ``<out>/claims.json`` and the page ``<out>.md``, computed from the evidence files alone.
   A cell whose evidence is incomplete is pending, never left out.

A cell compares two methods on one backbone and dataset: Δ = mean over test users of A − B, each
user's metric averaged over the seeds first, and the two-sided paired t-test over those users
(``eval.pairing``, ``eval.significance``). A ``detects`` cell compares one judge on two backbones the
same way, over each user's noise-detection AUC among their own training interactions
(``eval.detection.per_user_auc``, which every run with a judgement and planted added interactions
writes to its per_user.npz and the evidence keeps). :func:`check_claims` (``mmdenoise report <out>``)
recomputes every Δ and p of claims.json from the evidence files (one folder per seed of the cell's
dataset) and re-renders the page.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import statistics
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..config import Override
from ..errors import ConfigError, MMDenoiseError
from ..eval.pairing import DETECTION_AUC, LOCALISATION_GAIN
from ..log import get_logger
from .runner import (TOP_KEYS, Objective, best_record, make_trial, param_text, read_trial_record, resolved_config,
                     run_trials, settings_key, stored_settings_key, trial_name, trial_status, validate_trial)
from .spec import SweepSpec, _overrides_list, _reject_unknown_keys, _resolve_dataset, expand
from .study import NOISE_KINDS, noised_copy, parse_seeds
from .tables import markdown

log = get_logger(__name__)

SPEC_KEYS = ("title", "datasets", "budget", "seeds", "tune_seed", "search_seed", "set", "methods", "claims")
TITLE = "Do the papers' claims hold?"
DATASET_KEYS = ("name", "source", "noise", "set", "tune_from", "seeds", "splits", "cut")
METHOD_KEYS = ("denoiser", "model", "grid", "selection_of", "set")
CLAIM_KEYS = ("id", "claim", "source", "kind", "method", "versus", "backbones", "against", "datasets")
KINDS = ("beats", "detects", "localises")
#: the backbone of a sequential method: the method is a whole model (``sequential.SEQUENTIAL_MODELS``)
SEQUENTIAL = "sequential"
#: the other side of a ``localises`` cell: the chance rate each user's gain is measured from
CHANCE = "chance"
#: the config key of a sequential run's user split
SPLIT_KEY = "sequence.split_seed"
STAGES = ("tune", "final", "page", "all")
#: a cell whose dataset cuts one of its runs (``cut`` in the dataset's entry)
CUT = "cut"
#: selection: validation Recall@20, the only thing that chooses a configuration
OBJECTIVE = Objective("recall@20", "max")
METRICS = ("recall@20", "ndcg@20")
SHORT = {"recall@20": "R@20", "ndcg@20": "N@20", DETECTION_AUC: "AUC", LOCALISATION_GAIN: "P@3 − chance"}
PRIMARY = "recall@20"
#: what a cell of each kind compares per user; the first decides the verdict
KIND_METRICS = {"beats": METRICS, "detects": (DETECTION_AUC,), "localises": (LOCALISATION_GAIN,)}
ALPHA = 0.05
VERDICTS = ("confirmed", "refuted", "inconclusive")
CLAIMS_JSON = "claims.json"
SELECTION_JSON = "selection.json"
#: the finished trials of a sweep still in progress, beside its evidence (selection.json replaces it)
TUNING_JSON = "tuning.json"
EVIDENCE_DIR = "evidence"
EVIDENCE_RESULT_KEYS = ("model", "denoiser", "seed", "dataset", "best_epoch", "epochs_run", "device")
#: relative tolerance of the check on p and Δ (the numbers are recomputed, so they agree to rounding)
CHECK_TOLERANCE = 1e-9
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

RULE = (f"A cell is **confirmed** when Δ{SHORT[PRIMARY]} > 0 and the paired t-test on {SHORT[PRIMARY]} gives "
        f"p < {ALPHA}, **refuted** when Δ{SHORT[PRIMARY]} < 0 and p < {ALPHA}, and **inconclusive** otherwise. "
        f"{SHORT['ndcg@20']} is shown with its own p and does not enter the verdict. A claim holds on a dataset "
        "(confirmed) when every one of its comparisons there is confirmed; it is refuted there when any "
        "comparison is refuted; otherwise it is inconclusive, or pending while a comparison has no evidence yet. "
        "p-values are two-sided and not corrected for the number of comparisons. A `detects` cell applies the "
        "same rule to each user's noise-detection AUC (the judge's ranking of that user's training "
        "interactions against the planted ones) on one backbone against another, and a `localises` cell to each "
        "test user's item-localisation precision@3 minus its chance (the share of planted points of interest in "
        "the user's history window), against 0. Where a sequential model runs on several user splits, each split's "
        "test users are paired within it (seeds averaged), and a user held out in more than one split counts "
        "once, with the mean of its differences.")


# ------------------------------------------------------------------- spec
@dataclass(frozen=True)
class ClaimData:
    """A dataset of the spec: ``name`` (its evidence folder), ``source`` (a registered name or an absolute
    folder; ``shown`` as the spec wrote it), ``noise`` (kind, modality, level, seed) or None,
    ``overrides``: fixed settings for this dataset's runs only, after the spec's ``set`` (e.g. an epoch
    cap where a run to convergence does not fit the budget), ``tune_from``: the earlier dataset whose
    selections this one's runs use (None: tuned here), ``seeds``: its final seeds (None: the spec's), and
    ``splits``: the user splits (``sequence.split_seed``) a sequential method's final runs take, each at
    every seed (None: the default split only; general backbones have no user split), and ``cut``: the
    (backbone, method) pairs not run on this dataset, to fit the budget (their cells say so)."""

    name: str
    source: str
    shown: str
    noise: dict | None = None
    overrides: tuple[Override, ...] = ()
    tune_from: str | None = None
    seeds: tuple[int, ...] | None = None
    splits: tuple[int, ...] | None = None
    cut: tuple[tuple[str, str], ...] = ()


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
            raise ConfigError(f"{where}: unknown {what} {item!r}; {what}s: {', '.join(known)}")
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
    _reject_unknown_keys(raw, (*NOISE_KINDS, "seed"), where)
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
    from ..data.registry import DATASETS
    if isinstance(raw, str):
        raw = {"source": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a name, a folder or {{name, source, noise}}, got {raw!r}")
    _reject_unknown_keys(raw, DATASET_KEYS, where)
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
    return ClaimData(name, source, shown, noise, tuple(_fixed_settings(raw.get("set"), f"{where}.set")),
                     tune_from, seeds, splits)


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
    from ..denoise import DENOISERS
    from ..sequential import SEQUENTIAL_MODELS
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected {{denoiser: NAME, grid: {{key: [values]}}}} or {{denoiser: NAME, "
                          f"selection_of: METHOD, set: {{key: value}}}}, got {raw!r}")
    _reject_unknown_keys(raw, METHOD_KEYS, where)
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
    from ..models import MODELS
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(CLAIM_KEYS)}, got {raw!r}")
    _reject_unknown_keys(raw, CLAIM_KEYS, where)
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
    _reject_unknown_keys(raw, SPEC_KEYS, path)
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
    from ..config import read_yaml_file
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: claims spec not found")
    return parse_claims_spec(read_yaml_file(path), str(path), path.resolve().parent)


# ------------------------------------------------------------------- runs
def dataset_arg(data: ClaimData, work: Path) -> str:
    """What the runs of ``data`` name as their dataset: the source itself, or its noised copy's folder in
    the work folder (``work/data/<name>``); known without reading any data."""
    return data.source if data.noise is None else str((Path(work) / "data" / data.name).resolve())


def prepare_dataset(data: ClaimData, work: Path) -> str:
    """:func:`dataset_arg`, the noised copy written first when missing (``study.noised_copy``: the same
    noise for the same spec, and an error when the folder holds other data)."""
    if data.noise is None:
        return data.source
    from ..data import load_dataset
    noise = data.noise
    return noised_copy(load_dataset(data.source), noise["kind"], noise["modality"], noise["level"], noise["seed"],
                       Path(dataset_arg(data, work)))


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


def _prefixed(trials: list[dict], run: tuple[str, str, str]) -> list[dict]:
    """The trials with their folders under ``<dataset>/<backbone>/<method>/``."""
    return [{**t, "name": "/".join((*run, t["name"]))} for t in trials]


def tune_trials(spec: ClaimsSpec, work: Path, run: tuple[str, str, str]) -> list[dict]:
    dataset, backbone, method = run
    return _prefixed(expand(tune_spec(spec, dataset, backbone, method, dataset_arg(spec.datasets[dataset], work))),
                     run)


def select(records: Sequence[Mapping[str, Any]]) -> dict | None:
    """The selected trial: the best validation objective among ``records`` (first in trial order on ties).

    The records are cut to name, params and validation objective before anything is compared, so no
    test metric can take part in the choice.
    """
    seen = [{"name": r["name"].rsplit("/", 1)[-1], "params": dict(r["params"]), "objective": r.get("objective")}
            for r in records]
    return best_record(seen, OBJECTIVE)


def trial_record(root: Path, trial: Mapping[str, Any]) -> dict:
    """A finished tuning trial as selection.json lists it: ``name`` (without the run's folders),
    ``params``, ``objective`` (validation), ``seconds`` (:func:`run_seconds`) and ``settings``
    (``runner.settings_key``: what the trial trained, on any machine)."""
    record = read_trial_record(root, trial, OBJECTIVE)
    return {"name": trial["name"].rsplit("/", 1)[-1], "params": dict(trial["params"]),
            "objective": record["objective"], "seconds": run_seconds(Path(record["path"])),
            "settings": settings_key(resolved_config(trial))}


def committed_trials(out: Path | None, run: tuple[str, str, str]) -> dict[str, dict]:
    """The tuning trials committed for ``run`` under ``out`` by name: selection.json's (a finished
    sweep), else tuning.json's (a sweep in progress); none without ``out``."""
    if out is None:
        return {}
    for name in (SELECTION_JSON, TUNING_JSON):
        path = evidence_folder(out, run) / name
        if path.is_file():
            try:
                trials = json.loads(path.read_text(encoding="utf-8"))["trials"]
                return {t["name"]: t for t in trials}
            except (ValueError, KeyError, TypeError) as exc:
                raise MMDenoiseError(f"{path}: not a tuning record ({exc}); restore it from git or remove it") \
                    from None
    return {}


def _is_trial(record: Mapping[str, Any], trial: Mapping[str, Any]) -> bool:
    """Whether a committed record is ``trial``'s: the same name (its parameters' hash) and, where the
    record has one (every record written since the key was added; older ones match by name), the same
    settings key."""
    key = record.get("settings")
    return key is None or key == settings_key(resolved_config(trial))


def tuning_state(spec: ClaimsSpec, work: Path, out: Path | None, run: tuple[str, str, str]
                 ) -> tuple[list[dict], list[dict]]:
    """The sweep that selects ``run``'s configuration (:meth:`ClaimsSpec.tuned_on`: its own, or the same
    backbone and method on its dataset's ``tune_from``): the records of its finished trials in trial
    order (:func:`trial_record`; a trial finished in ``work``, else one committed under ``out``), and
    the trials that have neither."""
    tuned = spec.tuned_on(run)
    committed = committed_trials(out, tuned)
    records, missing = [], []
    for trial in tune_trials(spec, work, tuned):
        short = trial["name"].rsplit("/", 1)[-1]
        if trial_status(Path(work) / "tune" / trial["name"], trial) == "finished":
            records.append(trial_record(Path(work) / "tune", trial))
        elif short in committed and _is_trial(committed[short], trial):
            records.append(committed[short])
        else:
            missing.append(trial)
    return records, missing


def tuning_records(spec: ClaimsSpec, work: Path, run: tuple[str, str, str], out: Path | None = None
                   ) -> list[dict] | None:
    """:func:`tuning_state`'s records when every trial has finished (in ``work`` or committed under
    ``out``), else None."""
    records, missing = tuning_state(spec, work, out, run)
    return None if missing else records


def final_trials(spec: ClaimsSpec, work: Path, chosen: Mapping[str, Any], run: tuple[str, str, str]) -> list[dict]:
    """The selected grid point on ``run``'s dataset at each of its replicates (:meth:`ClaimsSpec.replicates`:
    one trial per seed, in seed order, on each user split of a sequential method). chosen: :func:`select`
    of :func:`tuning_records`; for a ``tune_from`` dataset it was chosen on the other dataset, and the
    point of ``run``'s own (never trained) sweep with the same parameters is repeated: the same denoiser
    settings, with this dataset and its fixed settings. For a method with ``selection_of`` it was chosen
    for that method, and the same point runs with this method's denoiser and fixed settings."""
    trial = next(t for t in tune_trials(spec, work, run) if t["name"].rsplit("/", 1)[-1] == chosen["name"])
    out = []
    for split, seed in spec.replicates(run[0], run[1]):
        on_split = [] if split is None else [(SPLIT_KEY, split)]
        params = {**trial["params"], **dict(on_split), "seed": seed}
        out.append(make_trial(params, {**trial["config"], "seed": seed},
                              [*trial["overrides"], *after_selection(spec, run[2]), *on_split],
                              name="/".join((*run, trial_name(params)))))
    return out


def after_selection(spec: ClaimsSpec, method: str) -> list[Override]:
    """The settings a method applies after its selected point: an ablation's (``selection_of``) ``set``."""
    m = spec.methods[method]
    return list(m.overrides) if m.selection_of else []


# --------------------------------------------------------------- evidence
def evidence_folder(out: Path, run: tuple[str, str, str], seed: int | None = None, split: int | None = None) -> Path:
    """``<out>/evidence/<dataset>/<backbone>/<method>/``, or one replicate's folder in it: ``s<seed>``, or
    ``split<k>-s<seed>`` on user split k."""
    folder = Path(out) / EVIDENCE_DIR / Path(*run)
    if seed is None:
        return folder
    return folder / (f"s{seed}" if split is None else f"split{split}-s{seed}")


def run_seconds(run_dir: Path) -> float:
    """Seconds a run spent training and validating, summed over its epochs (metrics.jsonl), so a run
    resumed across sessions counts every part; wall clock of one thread, on whatever machine ran it."""
    from ..training import record
    return float(sum(row.get("train_seconds", 0.0) + row.get("eval_seconds", 0.0)
                     for row in record.read_metrics(run_dir)))


def write_evidence(run_dir: Path, dest: Path, dataset_name: str) -> None:
    """The compact evidence of one finished run: per_user.npz (``users`` and the test metrics, compressed),
    config.yaml (the resolved config, ``dataset`` as the spec names it) and result.json (what the run
    was and its data condition, the validation and test means), with the run folder's file names so
    ``eval.pairing`` reads the folder as it reads a run."""
    import yaml

    from ..config import load_yaml
    from ..io import save_npz, write_json, write_text
    from ..training import record
    result = record.read_result(run_dir)
    per_user = record.read_per_user(run_dir)
    dest.mkdir(parents=True, exist_ok=True)
    # the per-user judgements a detects or localises cell pairs, where the run recorded them
    judged = {k: per_user[k] for k in ("detection_users", DETECTION_AUC, "localisation_users", LOCALISATION_GAIN)
              if k in per_user}
    save_npz(dest / record.PER_USER_FILE, compressed=True, users=per_user["users"],
             **{f"test_{m}": per_user[f"test_{m}"] for m in METRICS}, **judged)
    config = load_yaml(run_dir / record.CONFIG_FILE)
    config["dataset"] = dataset_name
    write_text(dest / record.CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    write_json(dest / record.RESULT_FILE, {**{k: result.get(k) for k in EVIDENCE_RESULT_KEYS},
                                           **({"sequence": result["sequence"]} if "sequence" in result else {}),
                                           "seconds": run_seconds(run_dir),
                                           "valid": {m: result["valid"][m] for m in METRICS},
                                           "test": {m: result["test"][m] for m in METRICS}})


def selection_record(spec: ClaimsSpec, run: tuple[str, str, str], records: Sequence[Mapping[str, Any]]) -> dict:
    """``selection.json`` of ``run`` from its :func:`tuning_records`: ``tuned_on`` (the dataset whose
    sweep chose), the trials tried there, the one ``selected`` (name, params, validation objective on
    ``tuned_on``). A ``tune_from`` dataset has no tuning of its own: no trials (they are in the other
    dataset's selection.json), ``planned`` and ``used`` 0; nor has a method with ``selection_of``
    (``selection_of``: the method whose selection it runs)."""
    tuned = spec.tuned_on(run)
    source, own = tuned[0], tuned == run
    return {"objective": f"valid {OBJECTIVE.metric}", "tuned_on": source,
            "selection_of": spec.methods[run[2]].selection_of, "tune_seed": spec.tune_seed,
            "budget": spec.budget, "grid_size": spec.methods[run[2]].grid_size,
            "planned": len(records) if own else 0, "used": len(records) if own else 0,
            "trials": [dict(r) for r in records] if own else [], "selected": select(records)}


def committed_final(out: Path, run: tuple[str, str, str], replicate: tuple[int | None, int],
                    trial: Mapping[str, Any]) -> bool:
    """Whether ``out`` holds the evidence of final ``trial`` (``run`` at ``replicate``): its per-user
    file and result, and a config.yaml with the trial's settings key (``runner.settings_key``)."""
    from ..training import record
    split, seed = replicate
    folder = evidence_folder(out, run, seed, split)
    return ((folder / record.PER_USER_FILE).is_file() and (folder / record.RESULT_FILE).is_file()
            and stored_settings_key(folder) == settings_key(resolved_config(trial)))


def collect_evidence(spec: ClaimsSpec, work: Path, out: Path) -> int:
    """Copy the evidence of every finished final run of a tuned (dataset, backbone, method); return how
    many seed folders it wrote. Nothing trains and no data is read.

    ``out`` is the study's memory across machines (``work`` need not survive a session): a sweep in
    progress commits its finished trials to tuning.json, a finished one its selection.json
    (:func:`selection_record`), and both count as tuned when the study goes on elsewhere
    (:func:`tuning_state`). For a run whose selection is known, the evidence is made to match it: a
    seed whose final run has not finished in ``work`` keeps committed evidence of the same trial
    (:func:`committed_final`) and loses any other (another selection's, or other settings').
    """
    from ..io import write_json
    written = 0
    for run in spec.runs():
        records, missing = tuning_state(spec, work, out, run)
        folder = evidence_folder(out, run)
        if missing:
            if spec.tuned_on(run) == run and records:
                folder.mkdir(parents=True, exist_ok=True)
                write_json(folder / TUNING_JSON, {"objective": f"valid {OBJECTIVE.metric}",
                                                  "planned": len(records) + len(missing), "trials": records})
                if (folder / SELECTION_JSON).exists():  # committed with other settings: no longer the selection
                    log.warning("claims: %s: its selection.json does not match the spec; the sweep goes on",
                                "/".join(run))
                    (folder / SELECTION_JSON).unlink()
            continue
        selection = selection_record(spec, run, records)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / SELECTION_JSON, selection)
        (folder / TUNING_JSON).unlink(missing_ok=True)
        replicates = spec.replicates(run[0], run[1])
        finals = final_trials(spec, work, selection["selected"], run)
        for (split, seed), trial in zip(replicates, finals):
            dest = evidence_folder(out, run, seed, split)
            if trial_status(Path(work) / "final" / trial["name"], trial) == "finished":
                write_evidence(Path(work) / "final" / trial["name"], dest, run[0])
                written += 1
            elif dest.exists() and not committed_final(out, run, (split, seed), trial):
                shutil.rmtree(dest)
        wanted = {evidence_folder(out, run, seed, split).name for split, seed in replicates}
        for stale in folder.iterdir():
            if stale.is_dir() and stale.name not in wanted:
                shutil.rmtree(stale)
    return written


def _complete(out: Path, run: tuple[str, str, str], replicates: Sequence[tuple[int | None, int]]
              ) -> list[Path] | None:
    """The evidence folders of ``run`` at every (split, seed), or None while one is missing."""
    from ..training import record
    folders = [evidence_folder(out, run, seed, split) for split, seed in replicates]
    done = all((f / record.PER_USER_FILE).is_file() and (f / record.RESULT_FILE).is_file() for f in folders)
    return folders if done else None


# ------------------------------------------------------------------- cells
def compare_runs(runs_a: Sequence[Path], runs_b: Sequence[Path], metrics: Sequence[str] = METRICS) -> dict:
    """One cell's numbers from two groups of run (or evidence) folders, one per seed: users evaluated
    in every run, each user's metrics averaged over the seeds, Δ = mean(A − B) and the two-sided paired
    t-test's p per metric (``eval.pairing.paired_per_user``, ``eval.significance.paired_ttest``);
    ``detection_auc``: the users with a per-user detection AUC in every run."""
    from ..eval.pairing import paired_per_user
    from ..eval.significance import paired_ttest
    delta, p, n = {}, {}, 0
    for metric in metrics:
        a, b = paired_per_user(list(runs_a), list(runs_b), metric)
        n = int(a.size)
        delta[metric] = float(a.mean() - b.mean()) if n else float("nan")
        p[metric] = paired_ttest(a, b)[1]
    return {"n_users": n, "delta": delta, "p": p}


def by_split(folders: Sequence[Path], replicates: Sequence[tuple[int | None, int]]) -> list[list[Path]]:
    """The folders of one side of a cell (one per replicate, in order) grouped by user split."""
    groups: dict[int | None, list[Path]] = {}
    for folder, (split, _) in zip(folders, replicates):
        groups.setdefault(split, []).append(Path(folder))
    return list(groups.values())


def compare_groups(groups_a: Sequence[Sequence[Path]], groups_b: Sequence[Sequence[Path]] | None,
                   metrics: Sequence[str]) -> dict:
    """One cell's numbers from two sides grouped by user split (:func:`by_split`); ``groups_b`` None: side
    A's values against 0 (``localises``: each user's gain over chance). One split on both sides is
    :func:`compare_runs`. Otherwise each split pairs its users (seeds averaged), a user held out in
    several splits counts once with the mean of its differences (``eval.pairing.distinct_user_differences``),
    Δ is the mean of those differences and p the two-sided t-test of them against 0."""
    import numpy as np

    from ..eval.pairing import distinct_user_differences, paired_per_split, per_user_mean
    from ..eval.significance import paired_ttest
    if groups_b is not None and len(groups_a) == 1 and len(groups_b) == 1:
        return compare_runs(groups_a[0], groups_b[0], metrics)
    delta, p, n = {}, {}, 0
    for metric in metrics:
        if groups_b is None:
            pairs = []
            for group in groups_a:
                users, values = per_user_mean(list(group), metric)
                pairs.append((users, values, np.zeros_like(values)))
        else:
            pairs = paired_per_split([list(g) for g in groups_a], [list(g) for g in groups_b], metric)
        _, diff = distinct_user_differences(pairs)
        n = int(diff.size)
        delta[metric] = float(diff.mean()) if n else float("nan")
        p[metric] = paired_ttest(diff, np.zeros_like(diff))[1]
    return {"n_users": n, "delta": delta, "p": p}


def verdict(delta: float, p: float) -> str:
    """The rule stated once (:data:`RULE`): confirmed, refuted or inconclusive."""
    if p < ALPHA and delta > 0:
        return "confirmed"
    if p < ALPHA and delta < 0:
        return "refuted"
    return "inconclusive"


def claim_verdict(verdicts: Sequence[str]) -> str:
    """A claim on one dataset from its comparisons' verdicts (``pending`` for one without evidence, ``cut``
    for one its dataset does not run: the others decide; ``cut`` when all are)."""
    verdicts = [v for v in verdicts if v != CUT]
    if not verdicts:
        return CUT
    if "refuted" in verdicts:
        return "refuted"
    if "pending" in verdicts:
        return "pending"
    return "confirmed" if all(v == "confirmed" for v in verdicts) else "inconclusive"


def _relative(path: Path, out: Path) -> str:
    return Path(os.path.relpath(path, out)).as_posix()


def page_data(spec: ClaimsSpec, out: Path, command: str, check: str) -> dict:
    """Everything claims.json holds and the page shows, from the spec and the evidence under ``out``;
    ``command`` regenerates it and ``check`` recomputes it (as the page prints them)."""
    out = Path(out)
    tuning = []
    for run in spec.runs():
        path = evidence_folder(out, run) / SELECTION_JSON
        selection = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        source = spec.datasets[run[0]].tune_from
        tuning.append({"dataset": run[0], "backbone": run[1], "method": run[2], "tuned_on": source,
                       "selection_of": spec.methods[run[2]].selection_of,
                       "planned": 0 if source else spec.trials_planned(run[2]),
                       "used": selection["used"] if selection else 0,
                       "selected": selection["selected"]["params"] if selection else None,
                       "valid": selection["selected"]["objective"] if selection else None})
    claims = []
    for claim in spec.claims:
        cells = []
        metrics = KIND_METRICS[claim.kind]
        for a, b, backbone, backbone_b in claim.comparisons():
            for dataset in claim.datasets:
                replicates = spec.replicates(dataset, backbone)
                runs_a = _complete(out, (dataset, backbone, a), replicates)
                runs_b = [] if b == CHANCE else _complete(out, (dataset, backbone_b, b), replicates)
                cell = {"method": a, "versus": b, "backbone": backbone, "dataset": dataset,
                        **({"against": backbone_b} if claim.kind == "detects" else {})}
                if spec.is_cut((dataset, backbone, a)) or (b != CHANCE and spec.is_cut((dataset, backbone_b, b))):
                    cells.append({**cell, "status": CUT})
                    continue
                if runs_a is None or runs_b is None:
                    cells.append({**cell, "status": "pending"})
                    continue
                numbers = compare_groups(by_split(runs_a, replicates),
                                         None if b == CHANCE else by_split(runs_b, replicates), metrics)
                cells.append({**cell, "status": "done", **numbers,
                              "verdict": verdict(numbers["delta"][metrics[0]], numbers["p"][metrics[0]]),
                              "evidence": {"a": [_relative(f, out) for f in runs_a],
                                           "b": [_relative(f, out) for f in runs_b]}})
        claims.append({"id": claim.id, "claim": claim.text, "source": claim.source, "kind": claim.kind,
                       "method": list(claim.methods), "versus": list(claim.versus),
                       "backbones": list(claim.backbones), "datasets": list(claim.datasets),
                       **({"against": list(claim.against)} if claim.kind == "detects" else {}), "cells": cells})
    return {
        "title": spec.title, "folder": out.name, "page": f"../{out.name}.md",
        "command": command, "check": check, "rule": RULE, "alpha": ALPHA,
        "primary": PRIMARY, "metrics": list(METRICS),
        "protocol": {"objective": f"valid {OBJECTIVE.metric}", "budget": spec.budget, "seeds": spec.seeds,
                     "tune_seed": spec.tune_seed, "search_seed": spec.search_seed,
                     "set": [[k, v] for k, v in spec.overrides]},
        "datasets": [{"name": d.name, "source": d.shown, "noise": d.noise, "set": [[k, v] for k, v in d.overrides],
                      "tune_from": d.tune_from, "seeds": spec.seeds_of(d.name),
                      **({"splits": list(d.splits)} if d.splits else {}),
                      **({"cut": [list(pair) for pair in d.cut]} if d.cut else {})} for d in spec.datasets.values()],
        "methods": [{"name": m.name, "denoiser": m.denoiser, "grid": m.grid, "grid_size": m.grid_size,
                     "trials": spec.trials_planned(m.name), "selection_of": m.selection_of,
                     "set": [[k, v] for k, v in m.overrides], **({"model": m.model} if m.model else {})}
                    for m in spec.methods.values()],
        "tuning": tuning, "claims": claims, "results": run_results(spec, out), "compute": compute_spent(spec, out)}


def run_results(spec: ClaimsSpec, out: Path) -> list[dict]:
    """Every (dataset, backbone, method) with evidence at all its replicates: its test metrics, each user's
    value averaged over the seeds (a user held out on several user splits counts once), then over users
    (:func:`compare_groups` against 0), with the evidence folders they come from."""
    results = []
    for run in spec.runs():
        replicates = spec.replicates(run[0], run[1])
        folders = _complete(out, run, replicates)
        if folders is None:
            continue
        numbers = run_means(folders, replicates)
        results.append({"dataset": run[0], "backbone": run[1], "method": run[2], "n_users": numbers["n_users"],
                        "mean": numbers["delta"], "evidence": [_relative(f, out) for f in folders]})
    return results


def run_means(folders: Sequence[Path], replicates: Sequence[tuple[int | None, int]]) -> dict:
    """One run's test metrics from its evidence folders (one per replicate): :func:`compare_groups` of
    the folders against 0, so ``delta`` holds each metric's mean over users of the seed-averaged value."""
    return compare_groups(by_split(folders, replicates), None, METRICS)


def _evidence_names(out: Path, run: tuple[str, str, str], replicates: Sequence[tuple[int | None, int]]
                    ) -> list[str]:
    """The evidence folders of ``run``, one per (split, seed), as claims.json lists them (relative to out)."""
    return [_relative(evidence_folder(out, run, seed, split), out) for split, seed in replicates]


def compute_spent(spec: ClaimsSpec, out: Path) -> list[dict]:
    """Per dataset, the runs behind its evidence and their hours (:func:`run_seconds`): the tuning trials
    its selection.json files list (none for a ``tune_from`` dataset) and the final runs of its evidence,
    with how many of those ran on a GPU (their evidence records ``device: cuda...``; evidence written
    before the device was recorded counts as not)."""
    from ..training import record
    rows = []
    for name in spec.datasets:
        folder = Path(out) / EVIDENCE_DIR / name
        tuning = [t.get("seconds") for path in sorted(folder.glob(f"*/*/{SELECTION_JSON}"))
                  for t in json.loads(path.read_text(encoding="utf-8"))["trials"]]
        results = [json.loads(path.read_text(encoding="utf-8"))
                   for path in sorted(folder.glob(f"*/*/*/{record.RESULT_FILE}"))]
        final = [r.get("seconds") for r in results]
        rows.append({"dataset": name, "tuning_runs": len(tuning), "final_runs": len(final),
                     "final_runs_on_gpu": sum(str(r.get("device") or "").startswith("cuda") for r in results),
                     "tuning_hours": sum(x for x in tuning if x is not None) / 3600,
                     "final_hours": sum(x for x in final if x is not None) / 3600,
                     "unmeasured": sum(x is None for x in (*tuning, *final))})
    return rows


# -------------------------------------------------------------------- page
def _p_text(p: float) -> str:
    """Two significant digits; a p below float64's smallest normal number (the t distribution's tail
    underflows to 0 at ~6,000 paired users) as an upper bound, not as 0."""
    if p < sys.float_info.min:
        return f"< {sys.float_info.min:.0e}"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _cell_text(cell: Mapping[str, Any]) -> str:
    if cell["status"] != "done":
        return cell["status"]
    d, p = cell["delta"], cell["p"]
    return ", ".join(f"Δ{SHORT[m]} {d[m]:+.4f} (p {_p_text(p[m])})" for m in d) + f": {cell['verdict']}"


def _backbone_b(cell: Mapping[str, Any]) -> str:
    """The backbone of a cell's ``versus`` side: its own for ``beats``, ``against`` for ``detects``."""
    return cell.get("against", cell["backbone"])


def _comparison_text(cell: Mapping[str, Any]) -> str:
    if "against" in cell:
        return f"{cell['method']} on {cell['backbone']} vs on {cell['against']}"
    return f"{cell['method']} vs {cell['versus']} on {cell['backbone']}"


def _noise_text(noise: Mapping[str, Any] | None) -> str:
    if not noise:
        return "as built"
    what = f"{noise['kind']} {noise['modality']}" if noise.get("modality") else noise["kind"]
    return f"{what} {100 * noise['level']:g}% (noise seed {noise['seed']})"


def _params_text(params: Mapping[str, Any] | None) -> str:
    if params is None:
        return "pending"
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={param_text(v)}" for k, v in params.items()) or "defaults"


def _grid_text(method: Mapping[str, Any]) -> str:
    """A method's grid as the page shows it; for one run at another's selection, that and its fixed settings."""
    fixed = ", ".join(f"`{k}={param_text(v)}`" for k, v in method.get("set") or [])
    if method.get("selection_of"):
        return f"{method['selection_of']}'s selection" + (f", with {fixed}" if fixed else "")
    grid = "; ".join(f"{k} ∈ {param_text(v)}" for k, v in method["grid"].items()) or "none"
    return grid + (f" (fixed: {fixed})" if fixed else "")


def _cut_text(cut: Sequence[Sequence[str]] | None, methods: Sequence[Mapping[str, Any]]) -> str:
    """``lightgcn: every method; vbpr: none, rce`` for a dataset's cut pairs (``–`` without); methods:
    the ``methods`` entries of claims.json, which say what "every method" of a backbone is."""
    by_backbone: dict[str, list[str]] = {}
    for backbone, method in cut or []:
        by_backbone.setdefault(backbone, []).append(method)
    every = lambda x: {m["name"] for m in methods if bool(m.get("model")) == (x == SEQUENTIAL)}  # noqa: E731
    return "; ".join(f"{x}: {'every method' if set(ms) == every(x) else ', '.join(ms)}"
                     for x, ms in by_backbone.items()) or "–"


def dataset_seeds(data: Mapping[str, Any], dataset: Mapping[str, Any]) -> list[int]:
    """The final seeds of a ``datasets`` entry of claims.json (the protocol's where it gives none)."""
    return list(dataset.get("seeds") or data["protocol"]["seeds"])


def data_replicates(data: Mapping[str, Any], dataset: Mapping[str, Any] | None, backbone: str
                    ) -> list[tuple[int | None, int]]:
    """:meth:`ClaimsSpec.replicates` from claims.json: (user split, seed) of a (dataset entry, backbone);
    none for a dataset the page does not list."""
    if dataset is None:
        return []
    return replicates_of(dataset.get("splits") if backbone == SEQUENTIAL else None, dataset_seeds(data, dataset))


def cell_label(claim: Mapping[str, Any], cell: Mapping[str, Any]) -> str:
    """A cell as errors name it: ``claim-id: A vs B on BACKBONE, DATASET`` (``detects``: ``claim-id: A on
    BACKBONE vs on OTHER, DATASET``)."""
    return f"{claim['id']}: {_comparison_text(cell)}, {cell['dataset']}"


def render_page(data: Mapping[str, Any]) -> str:
    """The Markdown page of a claims.json mapping (a pure function of it: the check re-renders it)."""
    datasets = [d["name"] for d in data["datasets"]]
    folder, proto = data["folder"], data["protocol"]
    transferred = [d for d in data["datasets"] if d.get("tune_from")]
    ablations = [m for m in data["methods"] if m.get("selection_of")]
    own_seeds = any(dataset_seeds(data, d) != list(proto["seeds"]) for d in data["datasets"])
    split = [d for d in data["datasets"] if d.get("splits")]
    cuts = [d for d in data["datasets"] if d.get("cut")]
    sequential = [m for m in data["methods"] if m.get("model")]
    lines = [f"# {data['title']}", "",
             f"Generated by `{data['command']}` from the evidence files in [`{folder}/`]({folder}/); do not edit "
             f"by hand. `{data['check']}` recomputes every Δ and p on this page from those files alone.", "",
             "## Verdicts", "",
             "Each claim on each dataset (the rule is below; the comparisons behind each are in its section).", ""]
    rows = []
    for claim in data["claims"]:
        row = [f"[{claim['id']}](#{claim['id']})"]
        for dataset in datasets:
            cells = [c for c in claim["cells"] if c["dataset"] == dataset]
            if not cells:
                row.append("–")
                continue
            verdicts = [c.get("verdict", "pending") if c["status"] == "done" else c["status"] for c in cells]
            counts = ", ".join(f"{verdicts.count(v)} {v}" for v in (*VERDICTS, "pending", CUT) if verdicts.count(v))
            row.append(f"{claim_verdict(verdicts)} ({counts})")
        rows.append(row)
    lines += [markdown(["claim", *datasets], rows, "l" * (1 + len(datasets))), "",
              "## Rule", "", data["rule"], "",
              "## Protocol", "",
              f"- Every (dataset, backbone, method) is tuned on validation {SHORT[PRIMARY]} alone with the same "
              f"budget: min({proto['budget']}, the size of the method's grid) trials, the grid being the one the "
              f"method's paper tunes (see the spec's comments). A grid larger than the budget contributes the same "
              f"{proto['budget']} points (drawn with search seed {proto['search_seed']}) on every backbone and "
              "dataset. Test metrics never select anything."
              + (" A dataset *tuned on* another (the table below) is the exception: it runs no tuning trial, and "
                 "each (backbone, method) there runs the configuration selected on that dataset for the same "
                 "(backbone, method) (the same denoiser settings, with this dataset's fixed settings), so every "
                 "method still has the same tuning budget, spent on the other dataset." if transferred else "")
              + (" A method run *as* another (an ablation: the methods table names which) has no tuning of its "
                 "own either: it runs the configuration selected for that method on the same backbone and "
                 "dataset, with its own denoiser or fixed settings, so a component is removed from the tuned full "
                 "method, as the papers' ablation tables do." if ablations else ""),
              f"- Tuning trials train with seed {proto['tune_seed']}; the selected configuration then runs with "
              + (f"the seeds of its dataset (the table below; {', '.join(map(str, proto['seeds']))} unless the "
                 "dataset gives its own)" if own_seeds else f"seeds {', '.join(map(str, proto['seeds']))}")
              + ", and only those runs are tested here.",
              "- Backbone settings (model parameters, learning rate, batch size) stay at their defaults for every "
              "method; only the denoiser's own settings are tuned."
              + (f" A sequential model (backbone `{SEQUENTIAL}`) is a method itself: its own settings are the grid "
                 "(its fixed settings, shared by the sequential methods, in the methods table)." if sequential else ""),
              *([f"- Sequential models run on user splits (`{SPLIT_KEY}`, the datasets table): each split holds "
                 "out its own validation and test users; tuning uses the default split, and the selected "
                 "configuration runs at every seed on every split."] if split else []),
              *([f"- Where a dataset's runs would not fit the budget, its spec entry cuts (backbone, method) pairs "
                 "(the datasets table; the spec's comments say why): they are not run there, the cells that need "
                 f"them say `{CUT}`, and a claim's verdict on that dataset rests on its other cells."] if cuts else []),
              "- Fixed settings for every run: "
              + (", ".join(f"`{k}={param_text(v)}`" for k, v in proto["set"]) or "none") + ".",
              "- A cell pairs two methods on one backbone and dataset over the test users every run evaluated: "
              "each user's metric is averaged over the seeds, Δ is the mean over users of A − B, p the two-sided "
              "paired t-test over users. Its evidence is "
              f"`{folder}/{EVIDENCE_DIR}/<dataset>/<backbone>/<method>/s<seed>/` for both methods"
              + (", `split<k>-s<seed>/` on user split k" if split else "") + " (per-user "
              f"test metrics, the resolved config, a small result; each cell's list is in `{folder}/{CLAIMS_JSON}`).",
              "",
              markdown(["dataset", "source", "planted noise", "tuning", "seeds", "its own settings",
                        *(["not run (cut)"] if cuts else [])],
                       [[d["name"], d["source"], _noise_text(d["noise"]),
                         f"tuned on {d['tune_from']}" if d.get("tune_from") else f"budget {proto['budget']}",
                         ", ".join(map(str, dataset_seeds(data, d)))
                         + (f" on user split{'s' if len(d['splits']) > 1 else ''} "
                            f"{', '.join(map(str, d['splits']))}" if d.get("splits") else ""),
                         ", ".join(f"`{k}={v}`" for k, v in d.get("set", [])) or "–",
                         *([_cut_text(d.get("cut"), data["methods"])] if cuts else [])] for d in data["datasets"]],
                       "llllll" + ("l" if cuts else "")), "",
              markdown(["method", "denoiser", "grid", "grid size", "trials"],
                       [[m["name"], f"{m['model']} (sequential model)" if m.get("model") else m["denoiser"],
                         _grid_text(m),
                         "–" if m.get("selection_of") else str(m["grid_size"]), str(m["trials"])]
                        for m in data["methods"]], "lllrr"), "",
              "## Tuning budget", "",
              "Trials run / trials planned per (backbone, method) on each dataset (*from* another: none of its "
              "own, that dataset's selection is used); a cell's comparison uses a method only once its tuning "
              "is complete.", ""]
    by_key = {(t["dataset"], t["backbone"], t["method"]): t for t in data["tuning"]}
    runs = set(by_key)

    def per_dataset(show: Callable[[Mapping[str, Any]], str], align: str) -> list[str]:
        """One table per group of :func:`_table_groups`: a row per (backbone, method), a column per dataset."""
        return [markdown(["backbone", "method", *shown],
                         [[x, m, *(show(by_key[(d, x, m)]) if (d, x, m) in by_key else "–" for d in shown)]
                          for x, m in pairs], "ll" + align * len(shown)) + "\n" for pairs, shown in _table_groups(data)]
    def source(t: Mapping[str, Any]) -> str:
        """Where a run's selection comes from, when not from its own sweep: 'as M', 'from D' or both."""
        return ", ".join(([f"as {t['selection_of']}"] if t.get("selection_of") else [])
                         + ([f"from {t['tuned_on']}"] if t.get("tuned_on") else []))

    lines += per_dataset(lambda t: source(t) or f"{t['used']}/{t['planned']}", "r")
    for claim in data["claims"]:
        methods = ", ".join(claim["method"])
        compared = (f"{methods} on {', '.join(claim['backbones'])} vs on {', '.join(claim['against'])}"
                    if "against" in claim else
                    f"{methods} vs {', '.join(claim['versus'])} on {', '.join(claim['backbones'])}")
        lines += [f"## {claim['id']}", "", f"**Claim**: {claim['claim']} ({claim['source']}). Kind "
                  f"`{claim['kind']}`: {compared}.", ""]
        rows = []
        for label in dict.fromkeys(_comparison_text(c) for c in claim["cells"]):
            cells = {c["dataset"]: c for c in claim["cells"] if _comparison_text(c) == label}
            rows.append([label, *(_cell_text(cells[d]) if d in cells else "–" for d in claim["datasets"])])
        lines += [markdown(["comparison", *claim["datasets"]], rows, "l" * (1 + len(claim["datasets"]))), ""]
    if data.get("results") is not None:
        lines += ["## Test metrics", "",
                  f"Test {SHORT[PRIMARY]} ({SHORT['ndcg@20']}) of every run with evidence at all its seeds: each "
                  "user's value averaged over the seeds (and user splits), then over users; the best "
                  f"{SHORT[PRIMARY]} of each backbone on each dataset in bold. Which differences are significant "
                  "is in the claims' sections above.", ""]
        results = {(r["dataset"], r["backbone"], r["method"]): r["mean"] for r in data["results"]}
        best = {}
        for (d, x, _), mean in results.items():
            best[(d, x)] = max(best.get((d, x), -math.inf), mean[PRIMARY])

        def result_text(d: str, x: str, m: str) -> str:
            if (d, x, m) not in results:
                return "pending"
            mean = results[(d, x, m)]
            text = f"{mean[PRIMARY]:.4f}"
            return (f"**{text}**" if mean[PRIMARY] == best[(d, x)] else text) + f" ({mean['ndcg@20']:.4f})"
        for pairs, shown in _table_groups(data):
            lines += [markdown(["backbone", "method", *shown],
                               [[x, m, *(result_text(d, x, m) if (d, x, m) in runs else "–" for d in shown)]
                                for x, m in pairs], "ll" + "r" * len(shown)), ""]
    if data.get("compute"):
        lines += ["## Compute spent", "",
                  "Hours of the runs behind the evidence so far (training and validation, summed over each run's "
                  "epochs, so a run resumed across sessions counts every part): wall clock of one thread on the "
                  "machine that ran it, often shared with other runs, so an upper bound on its CPU time; for a "
                  "run on a GPU (counted in brackets), wall clock on a GPU shared with the runs beside it. The "
                  "budget the benchmark is sized to is 6 hours of a 2-core machine (12 core-hours) per dataset.", "",
                  markdown(["dataset", "tuning runs", "tuning hours", "final runs", "final hours", "total hours"],
                           [[c["dataset"], str(c["tuning_runs"]), f"{c['tuning_hours']:.1f}",
                             str(c["final_runs"]) + (f" ({c['final_runs_on_gpu']} on a GPU)"
                                                     if c.get("final_runs_on_gpu") else ""),
                             f"{c['final_hours']:.1f}", f"{c['tuning_hours'] + c['final_hours']:.1f}"
                             + (f" ({c['unmeasured']} runs unmeasured)" if c.get("unmeasured") else "")]
                            for c in data["compute"]], "lrrrrr"), ""]
    lines += ["## Selected configurations", "",
              f"The trial with the best validation {SHORT[PRIMARY]} (its value in brackets, or the dataset it was "
              f"selected on); every tried trial is listed in "
              f"`{folder}/{EVIDENCE_DIR}/<dataset>/<backbone>/<method>/{SELECTION_JSON}`.", "",
              *per_dataset(lambda t: _params_text(t["selected"]) if t["selected"] is None
                           else f"{_params_text(t['selected'])} ({source(t)})"
                           if source(t) else f"{_params_text(t['selected'])} ({t['valid']:.4f})", "l"),
              "## Reproduce", "",
              f"- `{data['command']}` (add `--workers N`, `--datasets a,b` or `--stage tune|final|page`): "
              "every stage skips finished runs and resumes interrupted ones; `--stage page` trains nothing.",
              f"- `{data['check']}`: recomputes every Δ and p from the evidence and fails naming the cell that "
              "differs.", ""]
    return "\n".join(lines)


def _table_groups(data: Mapping[str, Any]) -> list[tuple[list[tuple[str, str]], list[str]]]:
    """The rows (backbone, method) of the page's per-run tables, the general backbones' and the sequential
    models' apart, each group with the datasets its runs are on (in the spec's order)."""
    groups = []
    for sequential in (False, True):
        entries = [t for t in data["tuning"] if (t["backbone"] == SEQUENTIAL) == sequential]
        if entries:
            names = {t["dataset"] for t in entries}
            groups.append((list(dict.fromkeys((t["backbone"], t["method"]) for t in entries)),
                           [d["name"] for d in data["datasets"] if d["name"] in names]))
    return groups


def page_path(out: Path) -> Path:
    """The page of the claims folder ``out``: ``<out>.md`` beside it."""
    out = Path(out)
    return out.parent / f"{out.name}.md"


def write_page(data: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    from ..io import write_json, write_text
    out = Path(out)
    write_json(out / CLAIMS_JSON, data)
    write_text(page_path(out), render_page(data))
    return out / CLAIMS_JSON, page_path(out)


# ------------------------------------------------------------------- check
def _close(a: float, b: float) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=CHECK_TOLERANCE, abs_tol=1e-300)


def check_claims(out: str | Path) -> int:
    """Recompute every Δ and p of ``out/claims.json`` from the evidence files it names (no run folder is
    read) and re-render the page; return the number of cells checked. An MMDenoiseError names the first
    cell that differs, whose evidence is not one folder per seed of its dataset (its own seeds, else the
    protocol's), or an evidence path that is not relative to ``out``, or a page that is not the
    rendering of claims.json."""
    out = Path(out)
    path = out / CLAIMS_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MMDenoiseError(f"{path}: not found; is {out} a claims folder?") from None
    except ValueError as exc:
        raise MMDenoiseError(f"{path}: not valid JSON ({str(exc)[:80]})") from None
    checked = 0
    entries = {d["name"]: d for d in data["datasets"]}
    for claim in data["claims"]:
        for cell in claim["cells"]:
            if cell["status"] != "done":
                continue
            label = cell_label(claim, cell)
            paths = cell["evidence"]["a"] + cell["evidence"]["b"]
            if any(Path(p).is_absolute() for p in paths):
                raise MMDenoiseError(f"{path}: cell {label}: evidence paths must be relative to {out}, got {paths}")
            replicates = data_replicates(data, entries.get(cell["dataset"]), cell["backbone"])
            for side, backbone, method in (("a", cell["backbone"], cell["method"]),
                                           ("b", _backbone_b(cell), cell["versus"])):
                expected = [] if method == CHANCE else _evidence_names(out, (cell["dataset"], backbone, method),
                                                                       replicates)
                if cell["evidence"][side] != expected:
                    raise MMDenoiseError(f"{path}: cell {label}: evidence {cell['evidence'][side]} is not one folder "
                                         f"per seed of {cell['dataset']}"
                                         + (" on each user split" if any(k is not None for k, _ in replicates) else "")
                                         + f" ({expected})")
            metrics = KIND_METRICS.get(claim.get("kind", "beats"), data["metrics"])
            fresh = compare_groups(by_split([out / p for p in cell["evidence"]["a"]], replicates),
                                   None if cell["versus"] == CHANCE
                                   else by_split([out / p for p in cell["evidence"]["b"]], replicates), metrics)
            if fresh["n_users"] != cell["n_users"]:
                raise MMDenoiseError(f"{path}: cell {label}: {cell['n_users']} users on the page, "
                                     f"{fresh['n_users']} in the evidence")
            for metric in metrics:
                for what in ("p", "delta"):
                    if not _close(float(cell[what][metric]), fresh[what][metric]):
                        raise MMDenoiseError(f"{path}: cell {label}: {what} {metric} is {cell[what][metric]!r} on the "
                                             f"page but {fresh[what][metric]!r} from the evidence")
            expected = verdict(fresh["delta"][metrics[0]], fresh["p"][metrics[0]])
            if cell["verdict"] != expected:
                raise MMDenoiseError(f"{path}: cell {label}: verdict {cell['verdict']!r} on the page, {expected!r} "
                                     "by the rule")
            checked += 1
    for result in data.get("results", []):
        run = (result["dataset"], result["backbone"], result["method"])
        label = f"test metrics of {run[2]} on {run[1]}, {run[0]}"
        replicates = data_replicates(data, entries.get(run[0]), run[1])
        expected = _evidence_names(out, run, replicates)
        if result["evidence"] != expected:
            raise MMDenoiseError(f"{path}: {label}: evidence {result['evidence']} is not one folder per seed of "
                                 f"{run[0]} ({expected})")
        fresh = run_means([out / p for p in expected], replicates)
        for metric in METRICS:
            if fresh["n_users"] != result["n_users"] or not _close(float(result["mean"][metric]),
                                                                    fresh["delta"][metric]):
                raise MMDenoiseError(f"{path}: {label}: {metric} {result['mean'][metric]!r} over "
                                     f"{result['n_users']} users on the page, {fresh['delta'][metric]!r} over "
                                     f"{fresh['n_users']} from the evidence")
    page = (out / data["page"]).resolve()
    if not page.is_file() or page.read_text(encoding="utf-8") != render_page(data):
        raise MMDenoiseError(f"{page}: not the rendering of {path} (edited by hand, or stale); regenerate it "
                             f"with {data['command']} --stage page")
    return checked


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

    ``hours`` estimates the one-thread hours the tuning and final runs still need (:func:`run_estimate`
    from the committed runs' measured seconds, less what a run in ``work`` has already spent; 0 for one
    finished there); ``unestimated`` counts those with no measured run to go by, and ``waiting`` runs
    are in neither."""
    spec = load_claims_spec(spec_path)
    work = Path(work)
    out = Path(out) if out is not None else Path(spec_path).parent
    names, wanted = _chosen_runs(spec, datasets, backbones, methods)
    rows = {name: {"dataset": name, "tuning": 0, "final": 0, "waiting": 0, "cut": len(spec.datasets[name].cut),
                   "hours": 0.0, "unestimated": 0} for name in names}
    measured = measured_seconds(out)

    def add_left(run: tuple[str, str, str], folder: Path, trial: Mapping[str, Any]) -> None:
        row, status = rows[run[0]], trial_status(folder, trial)
        if status == "finished":
            return
        estimate = run_estimate(measured, run)
        if estimate is None:
            row["unestimated"] += 1
        else:
            spent = run_seconds(folder) if status == "partial" else 0.0
            row["hours"] += max(estimate - spent, 0.0) / 3600

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


def measured_seconds(out: Path) -> dict[tuple[str, str, str], list[float]]:
    """The measured seconds (:func:`run_seconds`, as recorded) of every run committed under ``out`` by
    (dataset, backbone, method): its final runs (result.json) and tuning trials (selection.json, or
    tuning.json while a sweep is in progress)."""
    from ..training import record
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
    return seen


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
    """What a claims study did: the page and claims.json, cells done and pending, failed trials."""

    page: Path
    json: Path
    done: int
    pending: int
    failed: list[dict]


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
                 backend: str = "local",
                 on_result: Callable[[dict], None] | None = None) -> ClaimsResult:
    """Run the stages of the claims spec ``spec_path`` (see the module docstring).

    work: the folder of the runs (datasets with planted noise, tuning and final trials; never committed).
    out: the claims folder (evidence, claims.json; default the spec's folder); the page is ``<out>.md``.
    datasets: train only these (names or comma-separated); the page always covers every dataset.
    backbones: train only these backbones' runs (names or comma-separated; e.g. the cheap ones first).
    methods: train only these methods' runs (names or comma-separated), likewise.
    stage: ``tune``, ``final`` (for the runs whose tuning has finished), ``page`` (evidence and page;
    trains nothing and reads no data) or ``all``.
    """
    if stage not in STAGES:
        raise ConfigError(f"--stage {stage!r}: stages are {', '.join(STAGES)}")
    spec = load_claims_spec(spec_path)
    work = Path(work)
    out = Path(out) if out is not None else Path(spec_path).parent
    names, wanted = _chosen_runs(spec, datasets, backbones, methods)
    runs = list(filter(wanted, spec.runs()))
    failed: list[dict] = []
    if stage in ("tune", "final", "all"):
        for name in names:
            prepare_dataset(spec.datasets[name], work)
    if stage in ("tune", "all"):
        tuned = list(filter(wanted, spec.tuned_runs()))
        trials = [t for run in tuned for t in tuning_state(spec, work, out, run)[1]]
        log.info("claims: tuning %d trials of %d (dataset, backbone, method) (finished or committed ones skipped)",
                 len(trials), len(tuned))
        records = run_trials(work / "tune", trials, OBJECTIVE, backend=backend, workers=workers, on_result=on_result)
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
            trials += pending_finals(spec, work, out, run, records)
        records = run_trials(work / "final", trials, OBJECTIVE, backend=backend, workers=workers,
                             on_result=on_result)
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
    return ClaimsResult(page, json_path, done, pending, failed)


__all__ = ["ClaimsSpec", "ClaimsResult", "Claim", "ClaimData", "Method", "load_claims_spec", "parse_claims_spec",
           "claims_study", "claims_plan", "check_claims", "compare_runs", "verdict", "claim_verdict", "select",
           "render_page",
           "page_data", "collect_evidence", "write_evidence", "tune_spec", "tuning_records", "tuning_state",
           "committed_trials", "committed_final", "selection_record",
           "dataset_seeds", "RULE", "OBJECTIVE"]
