"""What ``mmdenoise list`` shows: every registered model, denoiser and dataset, one line each.

Rows come from the registries themselves (``MODELS``, ``SEQUENTIAL_MODELS``,
``DENOISERS``, ``DATASETS``), so a new entry is listed without touching this
module; a dataset without a note here is described by its builder's docstring.
"""
from __future__ import annotations

from typing import Sequence

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
