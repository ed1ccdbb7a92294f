"""Named datasets, resolved in the data home and built on first use."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import DataError, did_you_mean, short
from ..io import data_home
from ..log import get_logger
from .dataset import Dataset
from .mmrec import is_mmrec_folder, read_mmrec


def _build_ml100k(folder: Path) -> Path:
    from .builders.ml100k import build_ml100k
    return build_ml100k(folder)


def _build_ml1m(folder: Path) -> Path:
    from .builders.ml1m import build_ml1m
    return build_ml1m(folder)


def _build_book_crossing(folder: Path) -> Path:
    from .builders.bookcrossing import build_book_crossing
    return build_book_crossing(folder)


def _synth_builder(preset: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        from .synth import generate
        return generate(preset, seed=0, out=folder)
    build.__name__ = f"build_synth_{preset}"
    return build


def _seq_synth_builder(preset: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        from .seqsynth import generate_sequential
        return generate_sequential(preset, seed=0, out=folder)
    build.__name__ = f"build_synth_{preset.replace('-', '_')}"
    return build


SYNTH_PRESETS = ("tiny", "baby", "sports", "clothing", "microlens")
SEQ_SYNTH_PRESETS = ("seq-tiny", "seq-small")   # planted points of interest (data/seqsynth.py)

#: name -> builder(folder) writing an MMRec folder there.
DATASETS: dict[str, Callable[[Path], Path]] = {
    "ml-100k": _build_ml100k,
    "ml-1m": _build_ml1m,
    "book-crossing": _build_book_crossing,
    **{f"synth-{p}": _synth_builder(p) for p in SYNTH_PRESETS},
    **{f"synth-{p}": _seq_synth_builder(p) for p in SEQ_SYNTH_PRESETS},
}


def is_synthetic(name: str) -> bool:
    """Whether ``name`` is one of the registered synthetic presets (``synth-baby``, ``synth-seq-small``, ...)."""
    return name.startswith("synth-") and name.removeprefix("synth-") in (*SYNTH_PRESETS, *SEQ_SYNTH_PRESETS)


def dataset_folder(name: str) -> Path:
    """Where a registered dataset lives in the data home."""
    return data_home() / name


def resolve(name_or_dir: str | Path, *, build: bool = True) -> Path:
    """Turn a registered name or a folder into the folder holding the data."""
    if not isinstance(name_or_dir, (str, Path)):
        raise DataError(f"a dataset is a registered name or a folder path, got {short(name_or_dir)} "
                        f"({type(name_or_dir).__name__}); registered: {sorted(DATASETS)}")
    path = Path(name_or_dir).expanduser()
    if path.is_dir():
        return path
    key = str(name_or_dir)
    if key in DATASETS:
        folder = dataset_folder(key)
        if not folder.is_dir():
            if not build:
                raise DataError(f"dataset {key!r} is not built yet; run `mmdenoise data build {key}`")
            get_logger(__name__).info("building dataset %s into %s (first use; cached afterwards)", key, folder)
            DATASETS[key](folder)
        return folder
    raise DataError(f"{key!r} is neither a folder nor a registered dataset{did_you_mean(key, DATASETS)}; "
                    f"registered: {sorted(DATASETS)}")


def read_folder(folder: Path) -> Dataset:
    """Read a folder in any supported layout (MMRec, MMSSL/TikTok json, RecBole atomic)."""
    if is_mmrec_folder(folder):
        return read_mmrec(folder)
    from .tiktok import is_tiktok_folder, read_tiktok
    if is_tiktok_folder(folder):
        return read_tiktok(folder)
    if any(folder.glob("*.inter")):
        from .recbole import read_recbole
        return read_recbole(folder)
    raise DataError("no dataset found: expected <name>.inter with x_label (MMRec), "
                    "train.json/val.json/test.json (MMSSL) or RecBole atomic files", path=folder)


def load_dataset(name_or_dir: str | Path, *, build: bool = True) -> Dataset:
    """Load a dataset by registered name (built on first use) or folder path."""
    return read_folder(resolve(name_or_dir, build=build))
