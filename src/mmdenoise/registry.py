"""Registry entries and their capabilities: what a model or denoiser declares about itself.

A registry is a plain dict ``name -> Entry`` owned by its family
(``models.MODELS``, ``denoise.DENOISERS``, ``sequential.registry.SEQUENTIAL_MODELS``).
Adding a backbone, denoiser or sequential model is its own file plus one line
there; everything the rest of the package needs to know about it is on the
entry:

- ``needs_features``: it reads item content, so a dataset without a modality is
  refused once, by :func:`check_dataset`, where a run builds it (not by each
  constructor);
- ``trained``: False for a model with nothing to learn (popularity), which is
  therefore no teacher and no learner in the contract suites;
- ``task``: a model's task (``general`` or ``sequential``), so the name alone
  decides what a run trains;
- ``ablations``: a denoiser's ablation variants, label -> ``(path, value)``
  override pairs, which ``experiments.study.ablation_variants`` runs beside ``none``.

This module sits at the bottom of the import order (it imports only ``errors``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import ConfigError, did_you_mean, short

TASKS = ("general", "sequential")


@dataclass(frozen=True)
class Entry:
    """A registry entry: the typed config class and the constructor that uses it, what
    ``mmdenoise list`` shows (a one-line description, the source paper), and its capabilities.

    build: ``(dataset, config) -> Backbone`` for a model, ``(dataset, backbone,
    config) -> Denoiser`` for a denoiser, ``(dataset, view, config) -> model`` for
    a sequential model. The entry is checked when it is made: a wrong field is an
    error at import, not in the middle of a run.
    """

    config_cls: type
    build: Callable[..., Any]
    about: str = ""
    paper: str = ""
    needs_features: bool = field(default=False, kw_only=True)
    trained: bool = field(default=True, kw_only=True)
    task: str = field(default="general", kw_only=True)
    ablations: Mapping[str, tuple[tuple[str, Any], ...]] = field(default_factory=dict, kw_only=True)

    def __post_init__(self):
        if not dataclasses.is_dataclass(self.config_cls):
            raise TypeError(f"Entry.config_cls must be a dataclass, got {self.config_cls!r}")
        if not callable(self.build):
            raise TypeError(f"Entry.build must be callable, got {self.build!r}")
        if self.task not in TASKS:
            raise TypeError(f"Entry.task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for label, pairs in self.ablations.items():
            if not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
                raise TypeError(f"Entry.ablations[{label!r}] must be (path, value) pairs, got {pairs!r}")


def lookup(registry: Mapping[str, Entry], name: str, kind: str) -> Entry:
    """The entry for ``name``; a ConfigError listing the valid names otherwise."""
    if name not in registry:
        raise ConfigError(f"unknown {kind} {short(name)}{did_you_mean(name, registry)}; valid {kind}s: "
                          f"{', '.join(sorted(registry))}")
    return registry[name]


def check_dataset(entry: Entry, kind: str, name: str, dataset: Any) -> None:
    """The one check of an entry's data needs, made where a run builds it: a ConfigError naming the
    ``kind`` (model, denoiser, sequential model), ``name`` and the dataset when it cannot run on ``dataset``."""
    if entry.needs_features and not dataset.features:
        raise ConfigError(f"{kind} {name!r} needs item features; dataset {dataset.name!r} has no modality "
                          "(the features column of `mmdenoise list` shows what needs them)")


__all__ = ["Entry", "lookup", "check_dataset"]
