"""What ``mmdenoise list`` shows: every registered model, denoiser and dataset, one line each.

Rows come from the registries themselves (``MODELS``, ``SEQUENTIAL_MODELS``,
``DENOISERS``, ``DATASETS``), so a new entry is listed without touching this
module; a dataset without a note here is described by its builder's docstring.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Sequence

import yaml

KINDS = ("models", "denoisers", "datasets")

#: one line per known dataset; synthetic presets are described from their sizes
DATASET_NOTES = {
    "ml-100k": "MovieLens-100K: 943 users, 1,682 movies, 100k ratings as implicit feedback; text + genre",
    "ml-1m": "MovieLens-1M: 6,040 users, 3,706 movies, 1M ratings as implicit feedback; text + genre",
    "book-crossing": "Book-Crossing, 5-core: ~15k users, ~36k books; text (title, author) + publisher/year",
}


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def model_rows() -> list[dict]:
    """name, task, about, needs features, paper of every general and sequential model."""
    from .models import MODELS
    from .sequential.registry import SEQUENTIAL_MODELS
    return [{"name": name, "task": entry.task, "about": entry.about, "features": _yes(entry.needs_features),
             "paper": entry.paper}
            for name, entry in {**MODELS, **SEQUENTIAL_MODELS}.items()]


def denoiser_rows() -> list[dict]:
    """name, about, needs features, paper of every denoiser (general models only)."""
    from .denoise import DENOISERS
    return [{"name": name, "about": entry.about, "features": _yes(entry.needs_features), "paper": entry.paper}
            for name, entry in DENOISERS.items()]


def _dataset_about(name: str, builder) -> str:
    from .data.seqsynth import SEQ_PRESETS
    from .data.synth import PRESETS
    if name in DATASET_NOTES:
        return DATASET_NOTES[name]
    preset = name.removeprefix("synth-")
    if preset in PRESETS:
        p = PRESETS[preset]
        return (f"synthetic, planted truth: {p.users:,} users, {p.items:,} items, ~{p.interactions:,} "
                "interactions; image + text")
    if preset in SEQ_PRESETS:
        p = SEQ_PRESETS[preset]
        return (f"synthetic sequences, planted points of interest: {p.users:,} users, {p.items:,} items; "
                f"{' + '.join(p.modalities)}")
    doc = (getattr(builder, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else f"registered dataset (mmdenoise data build {name})"


def dataset_rows() -> list[dict]:
    """name, built (in the data home: ``$MMDENOISE_HOME``) and about of every registered dataset."""
    from .data.registry import DATASETS, dataset_folder
    return [{"name": name, "built": _yes(dataset_folder(name).is_dir()), "about": _dataset_about(name, builder)}
            for name, builder in DATASETS.items()]


def rows(kind: str) -> list[dict]:
    from .errors import ConfigError, did_you_mean
    if kind not in KINDS:
        raise ConfigError(f"unknown list {kind!r}{did_you_mean(kind, KINDS)}; lists: {', '.join(KINDS)}")
    return {"models": model_rows, "denoisers": denoiser_rows, "datasets": dataset_rows}[kind]()


def _sections() -> dict[str, tuple]:
    """name -> (config class, the --set prefix, what it is) of everything that has settings: every model
    and denoiser, and the run sections ``train`` and ``sequence``."""
    from .config import TrainConfig
    from .denoise import DENOISERS
    from .models import MODELS
    from .sequential.config import SequenceConfig
    from .sequential.registry import SEQUENTIAL_MODELS
    out = {"train": (TrainConfig, "train", "run section: the training loop (general runs; sequential runs' "
                                           "defaults below)"),
           "sequence": (SequenceConfig, "sequence", "run section: the sequence view of a sequential run")}
    for registry, prefix, kind in ((MODELS, "model", "model"), (SEQUENTIAL_MODELS, "model", "sequential model"),
                                   (DENOISERS, "denoiser", "denoiser")):
        for name, entry in registry.items():
            paper = f"; {entry.paper}" if entry.paper not in ("", "-") else ""
            out.setdefault(name, (entry.config_cls, prefix, f"{kind}: {entry.about}{paper}"))
    return out


def _own_doc(cls: type) -> str:
    """The docstring of config dataclass ``cls`` or of its nearest dataclass base that has one written (not
    the signature ``dataclass`` puts there, nor ``object``'s)."""
    for base in filter(dataclasses.is_dataclass, cls.__mro__):
        doc = inspect.cleandoc(base.__dict__.get("__doc__") or "")
        if doc and not doc.startswith(f"{base.__name__}("):
            return doc
    return ""


def _value(value) -> str:
    """A default as YAML writes it (true, null, [5, 10])."""
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip().removesuffix("...").strip()


def settings_text(name: str) -> str:
    """``mmdenoise list NAME``: the settings of a model, a denoiser or a run section (``train``,
    ``sequence``): each with its default, allowed values and paper symbol, then its class's docstring."""
    from .config import TrainConfig, settings_rows
    from .errors import ConfigError, did_you_mean
    from .sequential.config import sequential_train_defaults
    from .data.registry import DATASETS
    sections = _sections()
    if name in DATASETS:
        raise ConfigError(f"{name!r} is a dataset: `mmdenoise data info {name}` describes it (`mmdenoise list "
                          "datasets` lists them)")
    if name not in sections:
        raise ConfigError(f"unknown list or name {name!r}{did_you_mean(name, [*KINDS, *sections])}; lists: "
                          f"{', '.join(KINDS)}; or a model, denoiser, train or sequence for its settings")
    cls, prefix, heading = sections[name]
    settings = settings_rows(cls)
    symbols = any(r["symbol"] for r in settings)
    table = [{"setting": f"{prefix}.{r['name']}", "default": _value(r["default"]), "allowed": r["allowed"],
              **({"paper": r["symbol"]} if symbols else {})} for r in settings]
    lines = [f"{name} — {heading}"]
    if not table:
        return "\n".join([*lines, "no settings"])
    lines += [f"set with --set {prefix}.NAME=VALUE (or the bare NAME where no other section has it)", "",
              format_rows(table)]
    if cls is TrainConfig:
        sequential = [f"{r['name']} {_value(r['default'])}" for r, g in
                      zip(settings_rows(TrainConfig, sequential_train_defaults()), settings_rows(TrainConfig))
                      if r["default"] != g["default"]]
        lines += ["", "sequential runs start from: " + ", ".join(sequential)]
    doc = _own_doc(cls)
    return "\n".join([*lines, "", doc] if doc else lines)


def format_rows(table: Sequence[dict]) -> str:
    """A plain-text table, one column per key of the rows, left-aligned; the last column is not padded."""
    if not table:
        return ""
    keys = list(table[0])
    widths = {k: max(len(k), *(len(str(r[k])) for r in table)) for k in keys}
    lines = ["  ".join(k.ljust(widths[k]) for k in keys).rstrip()]
    lines += ["  ".join(str(r[k]).ljust(widths[k]) for k in keys).rstrip() for r in table]
    return "\n".join(lines)


def names(kind: str) -> str:
    """The comma-separated names of a list (for option help texts)."""
    return ", ".join(r["name"] for r in rows(kind))
