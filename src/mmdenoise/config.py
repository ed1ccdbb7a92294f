"""Typed configuration: dataclasses, YAML files and ``key=value`` overrides.

A run is described by one :class:`RunConfig`. Its YAML form::

    dataset: ml-100k
    model: lightgcn
    denoiser: none
    seed: 0
    train: {epochs: 1000, lr: 0.001, ...}
    model_params: {n_layers: 2, ...}      # fields of the model's config class
    denoiser_params: {}                   # fields of the denoiser's config class

Every unknown key, unknown name and wrongly typed value is a ConfigError that
lists what is valid. The values a setting may take beyond its type (ranges,
choices) are declared next to the field with :func:`setting` and checked by
:func:`from_dict`, the one validator every config class goes through. Values
in YAML and in ``--set`` are parsed with PyYAML's safe loader, bounded in size
and in alias expansion; nothing is ever evaluated as code. Error messages show
values shortened (:func:`short`), so a huge value cannot make a huge message.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from .errors import ConfigError, did_you_mean, short


# -------------------------------------------------------- allowed values
class Allowed:
    """What a setting may hold beyond its type; declared beside the field with :func:`setting`."""

    def allows(self, value: Any) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, value: Any, where: str) -> None:
        """ConfigError ``"<where>: must be <description>, got <value>"`` unless ``value`` is allowed."""
        if value is not None and not self.allows(value):  # None: an optional setting left unset
            raise ConfigError(f"{where}: must be {self.describe()}, got {short(value)}")


@dataclass(frozen=True)
class Range(Allowed):
    """A finite number within bounds: ``min``/``max`` inclusive, ``above``/``below`` exclusive."""

    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None

    def allows(self, value: Any) -> bool:
        return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and (self.min is None or value >= self.min) and (self.max is None or value <= self.max)
                and (self.above is None or value > self.above) and (self.below is None or value < self.below))

    def describe(self) -> str:
        low = (f"[{_bound(self.min)}" if self.min is not None else f"({_bound(self.above)}"
               if self.above is not None else None)
        high = (f"{_bound(self.max)}]" if self.max is not None else f"{_bound(self.below)})"
                if self.below is not None else None)
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f"{'≥' if self.min is not None else '>'} {low[1:]}"
        if high:
            return f"{'≤' if self.max is not None else '<'} {high[:-1]}"
        return "a finite number"


def _bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


class OneOf(Allowed):
    """One of a fixed set of names."""

    def __init__(self, *choices: Any):
        self.choices = choices

    def allows(self, value: Any) -> bool:
        return value in self.choices

    def describe(self) -> str:
        return "one of " + ", ".join(str(c) for c in self.choices)


class Check(Allowed):
    """A predicate with the sentence that describes what it allows (for what a range cannot say)."""

    def __init__(self, predicate: Callable[[Any], bool], description: str):
        self.predicate, self.description = predicate, description

    def allows(self, value: Any) -> bool:
        return bool(self.predicate(value))

    def describe(self) -> str:
        return self.description


def setting(default: Any = dataclasses.MISSING, allowed: Allowed | None = None, *,
            factory: Callable[[], Any] | None = None, runtime: bool = False, added: bool = False,
            symbol: str | None = None) -> Any:
    """A config field with its allowed values declared beside it, e.g. ``lr: float = setting(1e-3, Range(above=0))``.

    runtime: the setting changes how a run executes, not its results (progress
    bar, threads, device, evaluation batch size): a resumed run may change it,
    and comparisons of two runs' configs ignore it.
    added: the setting came after runs were recorded, which trained with its default: at its default it is
    left out of the settings that decide a run's results (:func:`result_settings`), so a recorded run's
    identity (``runner.settings_key``) does not change with the new field. Honoured in the run config's
    dataclass sections (``train``, ...); ``*_params`` sections enter the identity whole, so a parameter added
    to a model or denoiser changes recorded keys (the committed benchmark's fresh-machine test says so).
    symbol: the setting's name in its paper (``"S_thres"``, ``"λ1"``): a key that spells it
    (``s_thres``, ``lambda_1``) is answered with this field's name (:func:`reject_unknown_keys`).
    """
    metadata = {"allowed": allowed, "runtime": runtime, "added": added, "symbol": symbol}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@functools.cache
def _field_meta(cls: type, name: str, key: str) -> Any:
    """``key`` of field ``name``'s metadata, from ``cls`` or the nearest base that declares it (a
    subclass that only changes a default, ``kd: str = "none"``, keeps its parent's allowed values;
    once per class and field: classes are fixed at import)."""
    for base in cls.__mro__:
        if dataclasses.is_dataclass(base):
            for f in dataclasses.fields(base):
                if f.name == name and f.metadata.get(key) is not None:
                    return f.metadata[key]
    return None


def validate(obj: Any, where: str = "config") -> Any:
    """Check every field of dataclass ``obj`` (nested ones too) against its declared allowed values."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        allowed = _field_meta(type(obj), f.name, "allowed")
        if allowed is not None:
            allowed.check(value, f"{where}.{f.name}")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value, f"{where}.{f.name}")
    return obj


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints(cls)``, once per class (config classes are fixed at import; resolving
    the hints of every nested section for each of a study's thousands of trial configs was most of the
    time of ``study claims --stage plan``)."""
    return typing.get_type_hints(cls)


def _default(cls: type, name: str) -> Any:
    """Field ``name``'s default in dataclass ``cls`` (its factory's value), as a plain dict for a section."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return to_dict(f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)


def settings_rows(cls: type, instance: Any = None) -> list[dict]:
    """What config dataclass ``cls`` takes, one row per field: ``name``, ``default`` (``instance``'s
    value when given, e.g. the sequential trainer's defaults), ``allowed`` (the declared values, else the
    type) and ``symbol`` (the paper's, or "")."""
    hints = type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        allowed = _field_meta(cls, f.name, "allowed")
        hint = hints[f.name]
        kind = getattr(hint, "__name__", None) if isinstance(hint, type) else None
        rows.append({"name": f.name,
                     "default": to_dict(getattr(instance, f.name)) if instance is not None else _default(cls, f.name),
                     "allowed": allowed.describe() if allowed else
                     {"bool": "true or false", "str": "text", "int": "an integer", "float": "a number"}.get(
                         kind, str(hint).replace("typing.", "")),
                     "symbol": _field_meta(cls, f.name, "symbol") or ""})
    return rows


def result_settings(cls: type, data: Mapping[str, Any]) -> dict:
    """``data`` (a dict of dataclass ``cls``) without its runtime settings, nested sections included:
    the part that decides a run's results. An ``added`` setting at its default is left out too (runs
    recorded before it existed keep their identity)."""
    hints = type_hints(cls)
    out = {}
    for key, value in data.items():
        if _field_meta(cls, key, "runtime") or (_field_meta(cls, key, "added") and value == _default(cls, key)):
            continue
        sub = hints.get(key)
        out[key] = result_settings(sub, value) if (dataclasses.is_dataclass(sub) and isinstance(value, Mapping)) \
            else value
    return out


def _is_device(name: str) -> bool:
    return name == "auto" or re.fullmatch(r"(cpu|mps|cuda(:\d+)?)", name) is not None


def _is_metric(name: str) -> bool:
    from .eval.metrics import METRICS
    metric, _, k = name.partition("@")
    return metric in METRICS and k.isdigit() and int(k) >= 1


def _are_ks(ks: list) -> bool:
    return bool(ks) and len(set(ks)) == len(ks) and all(k >= 1 for k in ks)


def _are_metrics(names: list) -> bool:
    from .eval.metrics import METRICS
    return bool(names) and len(set(names)) == len(names) and all(n in METRICS for n in names)


#: seeds reach numpy's SeedSequence and torch.manual_seed, which take 0 .. 2**63 - 1
SEED_RANGE = Range(min=0, max=2 ** 63 - 1)


#: ``train.feature_precision`` values, each the name of the torch dtype the item features are stored in
FEATURE_PRECISIONS = ("float32", "bfloat16")


@dataclass
class TrainConfig:
    """Settings of the training loop: optimiser (Adam), batches, validation every ``eval_every`` epochs on
    ``valid_metric`` with early stopping after ``patience`` checks without a better one (never before
    ``min_epochs``), the metrics evaluated at each of ``ks``, device and threads."""

    epochs: int = setting(1000, Range(min=1))
    batch_size: int = setting(2048, Range(min=1))
    lr: float = setting(1e-3, Range(min=0))  # 0: a frozen model (evaluation and stopping tests)
    weight_decay: float = setting(0.0, Range(min=0))
    eval_every: int = setting(1, Range(min=1))
    patience: int = setting(20, Range(min=1))
    # no early stop before this many epochs (a run that starts on a plateau gets that long to leave it);
    # 0: patience alone decides. A run that stops later than it is the same with or without it.
    min_epochs: int = setting(0, Range(min=0), added=True)
    valid_metric: str = setting("recall@20", Check(_is_metric, "a metric@k of recall, ndcg, precision, map, "
                                                               "hit with k one of train.ks (e.g. recall@20)"))
    ks: list[int] = setting(factory=lambda: [5, 10, 20, 50],
                            allowed=Check(_are_ks, "distinct cut-offs >= 1, e.g. [10, 20, 100]"))
    metrics: list[str] = setting(factory=lambda: ["recall", "ndcg", "precision", "map", "hit"],
                                 allowed=Check(_are_metrics, "distinct names of recall, ndcg, precision, map, hit"))
    eval_batch_size: int = setting(4096, Range(min=1), runtime=True)
    mask_valid_in_test: bool = False
    device: str = setting("auto", Check(_is_device, "auto, cpu, cuda, cuda:N or mps"), runtime=True)
    progress: bool = setting(True, runtime=True)
    threads: int = setting(0, Range(min=0), runtime=True)
    deterministic: bool = True
    # the item features' storage (and first projection's) precision; bfloat16 is not exact (see
    # models/features.py and the README's speed section), so it is part of a run's settings
    feature_precision: str = setting("float32", OneOf(*FEATURE_PRECISIONS))

    def __post_init__(self):
        """``valid_metric`` must be one the evaluation computes (one of ``metrics`` at one of ``ks``)."""
        if not (isinstance(self.valid_metric, str) and _is_metric(self.valid_metric)):
            return  # a malformed name is the field's own error (``validate``)
        metric, _, k = self.valid_metric.partition("@")
        if isinstance(self.ks, list) and isinstance(self.metrics, list) and (
                int(k) not in self.ks or metric not in self.metrics):
            raise ConfigError(f"train.valid_metric={self.valid_metric!r} is not evaluated: train.ks is "
                              f"{self.ks} and train.metrics is {self.metrics}")


@dataclass
class RunConfig:
    """Everything that defines one training run."""

    dataset: str = "ml-100k"
    model: str = "lightgcn"
    denoiser: str = "none"
    seed: int = setting(0, SEED_RANGE)
    train: TrainConfig = field(default_factory=TrainConfig)
    model_params: dict = field(default_factory=dict)
    denoiser_params: dict = field(default_factory=dict)


# --------------------------------------------------------------------- typing
def _got(value: Any) -> str:
    """``[0.1, 0.2] (list; several values to try are a sweep: `mmdenoise sweep`)`` for a wrong scalar."""
    hint = "; several values to try are a sweep: `mmdenoise sweep`" if isinstance(value, list) else ""
    return f"{short(value)} ({type(value).__name__}{hint})"


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Return ``value`` coerced to ``annotation`` where lossless, else raise ConfigError."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            try:
                return _check_type(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {short(value)} matches none of {annotation}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {short(value)}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {_got(value)}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {_got(value)}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {_got(value)}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {_got(value)}")
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {short(value)}")
        args = typing.get_args(annotation)
        item_type = args[0] if args else Any
        items = [_check_type(v, item_type, f"{where}[{k}]") for k, v in enumerate(value)]
        return tuple(items) if (origin or annotation) is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {short(value)}")
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return from_dict(annotation, value, where)
    raise ConfigError(f"{where}: unsupported annotation {annotation!r}")


#: Greek letters as a key spells them, for matching a paper's symbol (``λ1`` is ``lambda_1``)
_GREEK = {"α": "alpha", "β": "beta", "γ": "gamma", "ε": "epsilon", "λ": "lambda", "ξ": "xi", "τ": "tau"}


def _spelt(name: str) -> str:
    """``name`` reduced for matching: subscripts as digits, Greek letters spelt out, lower case, letters
    and digits only (``λ₁``, ``lambda_1`` and ``Lambda1`` are all ``lambda1``)."""
    text = "".join(_GREEK.get(ch, ch) for ch in unicodedata.normalize("NFKC", name).lower())
    return re.sub(r"[^0-9a-z]", "", text)


def symbols(cls: type) -> dict[str, str]:
    """{paper symbol: field name} of config dataclass ``cls``'s settings declared with ``symbol=``."""
    return {sym: f.name for f in dataclasses.fields(cls) if (sym := _field_meta(cls, f.name, "symbol"))}


def suggest_key(name: object, valid: Sequence[str], known_symbols: Mapping[str, str] | None = None) -> str:
    """`` (did you mean 'threshold', written S_thres?)`` when ``name`` spells a paper symbol of
    ``known_symbols`` ({symbol: key}), else :func:`~mmdenoise.errors.did_you_mean` among ``valid``."""
    if isinstance(name, str):
        for symbol, key in (known_symbols or {}).items():
            if _spelt(symbol) == _spelt(name):
                return f" (did you mean {key!r}, written {symbol}?)"
    return did_you_mean(name, valid)


def reject_unknown_keys(raw: Mapping, valid: Sequence[str], where: str,
                        known_symbols: Mapping[str, str] | None = None, elsewhere: Sequence[str] = ()) -> None:
    """A ConfigError naming ``where``, the keys of ``raw`` not in ``valid`` (the valid key the first of
    them names as a paper symbol of ``known_symbols``, else the closest of ``valid`` and ``elsewhere``
    (keys that belong at another level, e.g. ``train.epochs`` for a run config's ``epochs``), when one is
    close) and the valid keys, if there are any."""
    unknown = [k for k in raw if k not in valid]
    if unknown:
        hint = suggest_key(unknown[0], [*valid, *elsewhere], known_symbols)
        raise ConfigError(f"{where}: unknown key(s) {short(unknown)}{hint}; valid keys: {', '.join(valid)}")


def from_dict(cls: type, data: Mapping[str, Any] | None, where: str = "config", elsewhere: Sequence[str] = ()) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys, wrong types and values outside
    the fields' declared allowed values (:func:`setting`).

    A nested section given in part (or as null) takes the rest from its field's default: a
    sequential run's ``train: {lr: 0.01}`` keeps the sequential trainer defaults
    (``SequentialRunConfig.train``), not those of ``TrainConfig`` itself.
    elsewhere: keys at another level that an unknown key may mean (``train.epochs`` for ``epochs``),
    for the error's suggestion only.
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {short(data)}")
    hints = type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    reject_unknown_keys(data, list(fields), where, symbols(cls), elsewhere)
    kwargs = {}
    for key, value in data.items():
        default = fields[key].default_factory
        if ((value is None or isinstance(value, Mapping)) and dataclasses.is_dataclass(hints[key])
                and default is not dataclasses.MISSING):
            value = {**to_dict(default()), **(value or {})}
        kwargs[key] = _check_type(value, hints[key], f"{where}.{key}")
    return validate(cls(**kwargs), where)


def to_dict(obj: Any) -> Any:
    """A plain (YAML-safe) dict of a dataclass, recursively."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ------------------------------------------------------------------ overrides
#: an override as a (key, value) pair: ``("train.lr", 0.01)``, the value already typed
Override = tuple[str, Any]


def override_pair(text: str) -> Override:
    """``("train.lr", 0.01)`` from ``"train.lr=0.01"``: the stripped key, and the value read by the
    bounded YAML loader (:func:`parse_yaml`; an empty value is the empty string)."""
    if "=" not in text:
        raise ConfigError(f"override {short(text)} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {short(text)} has an empty key")
    return key, (parse_yaml(raw, f"override {short(text)}") if raw.strip() else "")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"train.lr=0.01"`` into (["train", "lr"], 0.01); values via yaml.safe_load."""
    key, value = override_pair(text)
    return key.split("."), value


def override_pairs(overrides: Mapping[str, Any] | Sequence[str | Override] | None) -> list[Override]:
    """Overrides as (key, value) pairs, in order: ``"key=value"`` text parsed once (:func:`override_pair`),
    pairs (or two-item lists, as JSON stores them) and a mapping's items taken as they are."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        items: list = list(overrides.items())
    elif isinstance(overrides, (str, bytes)):
        raise ConfigError(f"overrides: expected a list of key=value or (key, value), got the text {short(overrides)}")
    else:
        items = list(overrides)
    pairs = []
    for item in items:
        if isinstance(item, str):
            pairs.append(override_pair(item))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str) and item[0].strip():
            pairs.append((item[0].strip(), item[1]))
        else:
            raise ConfigError(f"override {short(item)}: expected key=value or a (key, value) pair")
    return pairs


def _layout(run_cls: type, params: Mapping[str, type]) -> tuple[list[str], dict[str, type | None]]:
    """The top-level field names of run config class ``run_cls`` and the config class of each section:
    a dataclass-typed field's own class, a dict-typed (``*_params``) field's class in ``params`` (None
    when it has none)."""
    hints = type_hints(run_cls)
    top, sections = [], {}
    for f in dataclasses.fields(run_cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            sections[f.name] = hint
        elif hint is dict or typing.get_origin(hint) is dict:
            sections[f.name] = params.get(f.name)
        else:
            top.append(f.name)
    return top, sections


def run_keys(run_cls: type, params: Mapping[str, type] | None = None) -> list[str]:
    """Every key a config of run class ``run_cls`` takes: its top-level fields and ``section.field`` for
    each section (``train.lr``; a ``*_params`` section's fields from its class in ``params``)."""
    top, sections = _layout(run_cls, params or {})
    return top + [f"{s}.{f.name}" for s, c in sections.items() if c for f in dataclasses.fields(c)]


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str | Override], run_cls: type,
                    params: Mapping[str, type] | None = None) -> dict:
    """Apply overrides (``key=value`` text or (key, value) pairs, :func:`override_pairs`) to a raw
    mapping of run config class ``run_cls``, in order (returns a new dict).

    Keys are a top-level field (``model``, ``seed``), dotted ``section.field``
    (``train.lr``, ``sequence.max_len``, ``model_params.n_layers``; ``model.`` and
    ``denoiser.`` are short forms of the ``*_params`` sections) or a bare field
    name (``lr``, ``n_layers``) that exactly one section has. params: the config
    class of each ``*_params`` section (the named model's, denoiser's).
    """
    data = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    top_fields, section_classes = _layout(run_cls, params or {})
    section_fields = {s: [f.name for f in dataclasses.fields(c)] if c else [] for s, c in section_classes.items()}
    for item in overrides:
        key, value = override_pair(item) if isinstance(item, str) else item
        label = item if isinstance(item, str) else f"{key}={value!r}"
        path = key.split(".")
        if len(path) == 1:
            name = path[0]
            if name in top_fields:
                data[name] = value
                continue
            owners = [s for s, fs in section_fields.items() if name in fs]
            if len(owners) != 1:
                problem = "is ambiguous between " + ", ".join(owners) if owners else "is not a known key"
                valid = run_keys(run_cls, params)
                known = {sym: f"{s}.{key}" for s, c in section_classes.items() if c
                         for sym, key in symbols(c).items()}
                hint = "" if owners else suggest_key(name, valid, known)
                raise ConfigError(f"override {short(label)}: {short(name)} {problem}{hint}; valid keys: "
                                  f"{', '.join(valid)}")
            path = [owners[0], name]
        section = path[0] + "_params" if path[0] + "_params" in section_fields else path[0]
        if len(path) != 2 or section not in section_fields:
            raise ConfigError(f"override {short(label)}: unknown key; use one of {top_fields} or "
                              f"{', '.join(section_fields)}.<field>")
        data.setdefault(section, {})
        data[section][path[1]] = value
    return data


def resolve_run_config(run_cls: type, data: Mapping[str, Any] | Any, overrides: Sequence[str | Override],
                       params: Callable[[dict], Mapping[str, type]]) -> Any:
    """A raw run config (a mapping or a ``run_cls``) and overrides (``key=value`` text or (key, value)
    pairs), validated into a fully
    resolved ``run_cls``: the one resolver of general and sequential runs.

    Top-level overrides are applied first, since they name the model (and
    denoiser); then ``params(raw)`` gives the config class of each ``*_params``
    section for those names (it may also rewrite a name in ``raw``, such as an
    old run folder's model name, and raises ConfigError for an unknown one); then
    the other overrides are applied and everything is checked by :func:`from_dict`,
    each ``*_params`` section against its class, completed with its defaults.
    """
    raw = to_dict(data) if isinstance(data, run_cls) else dict(data or {})
    top_fields, _ = _layout(run_cls, {})
    pairs = override_pairs(overrides)
    raw = apply_overrides(raw, [p for p in pairs if p[0] in top_fields], run_cls)
    classes = params(raw)
    raw = apply_overrides(raw, [p for p in pairs if p[0] not in top_fields], run_cls, classes)
    # a section's key written at the top (``epochs:`` for ``train: {epochs: ...}``) is named with its section
    config = from_dict(run_cls, raw, "config", elsewhere=[k for k in run_keys(run_cls, classes) if "." in k])
    for section, cls in classes.items():
        name = getattr(config, section.removesuffix("_params"))
        setattr(config, section, to_dict(from_dict(cls, getattr(config, section), f"{section} ({name})")))
    return config


#: bounds on YAML input: a config is a few hundred bytes; an alias bomb expands a few hundred bytes into
#: billions of nodes, which are cheap to load (aliases are shared) but not to walk, compare or print
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 100_000


#: PyYAML's safe loader, its libyaml (C) build where installed: the same documents, ~10× faster
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str, source: str) -> Any:
    """``text`` parsed by PyYAML's safe loader (:data:`SAFE_LOADER`), refusing more than MAX_YAML_BYTES, a
    document that expands (aliases followed) to more than MAX_YAML_NODES nodes, or one nested deeper than
    the parser allows (libyaml: 1,000 levels); ConfigError naming ``source``."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{source}: {len(text)} characters; YAML input is limited to {MAX_YAML_BYTES}")
    loader = SAFE_LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {_cut(str(exc), 300)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, source: str) -> None:
    """ConfigError if the node graph, aliases expanded, has more than MAX_YAML_NODES nodes or a cycle.

    Aliases make the graph a DAG whose expanded size can be exponential in its
    own; sizes are summed bottom-up once per distinct node (iteratively, no
    recursion), so the check costs the graph, not the expansion.
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_YAML_NODES:
                raise ConfigError(f"{source}: YAML expands (aliases followed) to more than {MAX_YAML_NODES} "
                                  "values; config files are limited to that")
            continue
        if key in size:
            continue
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                raise ConfigError(f"{source}: YAML with a recursive alias (a value that contains itself)")
            if id(child) not in size:
                stack.append((child, False))


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file (bounded safe loading, :func:`parse_yaml`) into a mapping.

    A missing, unreadable or non-UTF-8 file is a ConfigError naming it.
    """
    path = Path(path)
    data = read_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def read_yaml_file(path: Path) -> Any:
    """The document of YAML file ``path`` (any shape), read at most MAX_YAML_BYTES; ConfigError naming
    the file when it is missing, a folder, unreadable, not UTF-8 or invalid (:func:`parse_yaml`)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_YAML_BYTES} bytes; YAML input is limited to that")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_yaml(text, str(path))


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)
