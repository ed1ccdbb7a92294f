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
lists what is valid. Values in YAML and in ``--set`` are parsed with
``yaml.safe_load``; nothing is ever evaluated as code.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import yaml

from .errors import ConfigError


@dataclass
class TrainConfig:
    """Settings of the training loop (DESIGN §4, §5)."""

    epochs: int = 1000
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 0.0
    eval_every: int = 1
    patience: int = 20
    valid_metric: str = "recall@20"
    eval_batch_size: int = 4096
    mask_valid_in_test: bool = False
    device: str = "auto"
    progress: bool = True
    threads: int = 0
    deterministic: bool = True


@dataclass
class RunConfig:
    """Everything that defines one training run."""

    dataset: str = "ml-100k"
    model: str = "lightgcn"
    denoiser: str = "none"
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)
    model_params: dict = field(default_factory=dict)
    denoiser_params: dict = field(default_factory=dict)


class Entry(NamedTuple):
    """A registry entry: the typed config class and the constructor that uses it, plus what
    ``mmdenoise list`` shows: a one-line description, the source paper and whether the entry
    needs item features (modalities)."""

    config_cls: type
    build: Any
    about: str = ""
    paper: str = ""
    features: bool = False


def lookup(registry: Mapping[str, Entry], name: str, kind: str) -> Entry:
    """The entry for ``name``; a ConfigError listing the valid names otherwise."""
    if name not in registry:
        raise ConfigError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(registry))}")
    return registry[name]


# --------------------------------------------------------------------- typing
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
        raise ConfigError(f"{where}: {value!r} matches none of {annotation}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r} ({type(value).__name__})")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r} ({type(value).__name__})")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r} ({type(value).__name__})")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r} ({type(value).__name__})")
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(annotation)
        item_type = args[0] if args else Any
        items = [_check_type(v, item_type, f"{where}[{k}]") for k, v in enumerate(value)]
        return tuple(items) if (origin or annotation) is tuple else items
    if origin is dict or annotation is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return from_dict(annotation, value, where)
    raise ConfigError(f"{where}: unsupported annotation {annotation!r}")


def from_dict(cls: type, data: Mapping[str, Any] | None, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(names)}")
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


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
def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"train.lr=0.01"`` into (["train", "lr"], 0.01); values via yaml.safe_load."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse value: {exc}") from None
    return key.split("."), value


_SECTIONS = ("train", "model_params", "denoiser_params")


def apply_overrides(data: dict, overrides: list[str], model_fields: list[str],
                    denoiser_fields: list[str]) -> dict:
    """Apply ``key=value`` overrides to a raw config mapping (returns a new dict).

    Keys may be dotted (``train.lr``, ``model_params.n_layers``; ``model.`` and
    ``denoiser.`` are accepted as short forms of the ``*_params`` sections) or
    bare (``lr``, ``n_layers``) when exactly one section has that field.
    """
    data = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    train_fields = [f.name for f in dataclasses.fields(TrainConfig)]
    top_fields = [f.name for f in dataclasses.fields(RunConfig) if f.name not in _SECTIONS]
    section_fields = {"train": train_fields, "model_params": model_fields, "denoiser_params": denoiser_fields}
    for text in overrides:
        path, value = parse_override(text)
        if len(path) == 1:
            name = path[0]
            if name in top_fields:
                data[name] = value
                continue
            owners = [s for s, fs in section_fields.items() if name in fs]
            if len(owners) != 1:
                problem = "is ambiguous between " + ", ".join(owners) if owners else "is not a known key"
                valid = top_fields + [f"{s}.{f}" for s, fs in section_fields.items() for f in fs]
                raise ConfigError(f"override {text!r}: {name!r} {problem}; valid keys: {', '.join(valid)}")
            path = [owners[0], name]
        section = {"model": "model_params", "denoiser": "denoiser_params"}.get(path[0], path[0])
        if len(path) != 2 or section not in _SECTIONS:
            raise ConfigError(f"override {text!r}: unknown key; use one of {top_fields} or "
                              f"{', '.join(_SECTIONS)}.<field>")
        data.setdefault(section, {})
        data[section][path[1]] = value
    return data


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file (safe loader) into a mapping."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)
