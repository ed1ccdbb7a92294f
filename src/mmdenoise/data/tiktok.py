"""The MMSSL json layout (TikTok and the other datasets MMSSL, LATTICE and MICRO ship).

Accepted layouts of a folder ``D``:

- MMSSL: ``D/train.json``, ``D/val.json``, ``D/test.json`` and the feature
  arrays beside them;
- LATTICE / MICRO: the same three json files in ``D/5-core/``, feature arrays
  in ``D``.

Each json file is one object mapping a user id (a decimal string, 0-based) to
the list of item ids (0-based integers) of that split; empty lists are allowed
(MMSSL lists every user in ``test.json``). ``val.json`` becomes the valid
split and ``test.json`` the test split, as MMSSL uses them.

Features: every ``<modality>_feat.npy`` in ``D`` is a modality named by its
prefix (MMSSL ships ``image_feat.npy``, ``text_feat.npy`` and, for TikTok,
``audio_feat.npy``), loaded with ``allow_pickle=False``. MMSSL's pickled
scipy matrices (``train_mat``, ``val_mat``, ``test_mat``) duplicate the json
files and are never opened: unpickling runs code.

Sizes: n_items is the feature row count (max item id + 1 without features);
n_users is max user id + 1 over users with at least one interaction.
Interactions keep file order (users in key order, items in list order). A
repeated (user, item) pair counts once, in its first split (train, valid,
test; file order within one), with a warning, as the MMRec reader does.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import SPLITS, Dataset, Interactions
from .mmrec import (SPARSE_ID_LIMIT, check_feature_rows, existing_folder, feature_errors_name_files,
                    first_occurrences, read_feature_files, read_json)

#: split -> file name, as MMSSL names them.
SPLIT_FILES = {"train": "train.json", "valid": "val.json", "test": "test.json"}
#: LATTICE and MICRO keep the json files here, below the features.
LATTICE_SUBFOLDER = "5-core"


def json_folder(folder: Path) -> Path | None:
    """The folder holding train/val/test.json: ``folder`` itself or ``folder/5-core``; None if neither."""
    for candidate in (folder, folder / LATTICE_SUBFOLDER):
        if (candidate / SPLIT_FILES["train"]).is_file():
            return candidate
    return None


def is_tiktok_folder(folder: Path) -> bool:
    return Path(folder).is_dir() and json_folder(Path(folder)) is not None


class _Pairs(list):
    """A JSON object as its (key, value) pairs, so duplicate keys are seen, not silently merged."""


@dataclass(frozen=True, eq=False)
class _SplitFile:
    """One parsed json split.

    users, items: int64 [n] in file order; owner: int64 [n], position of each
    interaction's user in ``keys`` (for messages naming the key as written).
    """

    path: Path
    keys: list[str]
    users: np.ndarray
    items: np.ndarray
    owner: np.ndarray
    offsets: np.ndarray

    def describe(self, index: int, position: bool = True) -> str:
        """Interaction ``index`` as the file has it: the user key as written and (with ``position``) its
        position in that user's list."""
        k = int(self.owner[index])
        return f"user {self.keys[k]!r}" + (f", position {index - int(self.offsets[k])}" if position else "")

    def error(self, index: int, problem: str, *, position: bool = True) -> DataError:
        """A DataError for interaction ``index``, naming the file and :meth:`describe`'s place."""
        return DataError(problem, path=self.path, field=self.describe(index, position))


def _read_split_file(path: Path) -> _SplitFile:
    """Parse and type-check one json split file; no Python loop per interaction on the good path."""
    if not path.is_file():
        raise DataError(f"missing (the MMSSL layout needs {', '.join(SPLIT_FILES.values())})", path=path)
    obj = read_json(path, object_pairs_hook=_Pairs)
    if type(obj) is not _Pairs:
        raise DataError(f"expected a JSON object mapping user id -> list of item ids, got {type(obj).__name__}",
                        path=path)
    keys = [k for k, _ in obj]
    values = [v for _, v in obj]

    if not (all(map(str.isascii, keys)) and all(map(str.isdigit, keys))):
        bad = next(k for k in keys if not (k.isascii() and k.isdigit()))
        raise DataError("user ids must be non-negative integers written as decimal strings",
                        path=path, field=f"user {bad!r}")
    if keys and max(map(len, keys)) > 18:
        bad = next(k for k in keys if len(k) > 18)
        raise DataError("user id too large", path=path, field=f"user {bad!r}")
    user_ids = np.fromiter(map(int, keys), dtype=np.int64, count=len(keys))
    order = np.argsort(user_ids, kind="stable")
    dup = np.flatnonzero(user_ids[order][1:] == user_ids[order][:-1])
    if dup.size:
        raise DataError("user appears twice in the object", path=path, field=f"user {keys[order[dup[0] + 1]]!r}")

    if not set(map(type, values)) <= {list}:
        k = next(i for i, v in enumerate(values) if type(v) is not list)
        raise DataError(f"expected a list of item ids, got {type(values[k]).__name__}",
                        path=path, field=f"user {keys[k]!r}")
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    offsets = np.r_[0, np.cumsum(lengths)[:-1]].astype(np.int64)
    owner = np.repeat(np.arange(len(keys), dtype=np.int64), lengths)
    flat = list(itertools.chain.from_iterable(values))
    partial = _SplitFile(path, keys, np.zeros(0, np.int64), np.zeros(0, np.int64), owner, offsets)
    if not set(map(type, flat)) <= {int}:
        k = next(i for i, x in enumerate(flat) if type(x) is not int)
        raise partial.error(k, f"item ids must be integers, got {flat[k]!r}")
    try:
        items = np.fromiter(flat, dtype=np.int64, count=len(flat))
    except OverflowError:
        k = next(i for i, x in enumerate(flat) if not -2 ** 63 <= x < 2 ** 63)
        raise partial.error(k, f"item id {flat[k]} too large") from None
    negative = np.flatnonzero(items < 0)
    if negative.size:
        raise partial.error(int(negative[0]), f"item id {items[negative[0]]} is negative")
    return _SplitFile(path, keys, np.repeat(user_ids, lengths), items, owner, offsets)


def _count(parts: list[_SplitFile], attr: str, what: str) -> int:
    """max id + 1 over all splits, refusing ids too sparse to have been re-indexed."""
    total = sum(p.users.size for p in parts)
    best = None
    for p in parts:
        ids = getattr(p, attr)
        if ids.size and (best is None or ids.max() > getattr(best, attr).max()):
            best = p
    if best is None:
        return 0
    ids = getattr(best, attr)
    k = int(np.argmax(ids))
    count = int(ids[k]) + 1
    if count > max(total, SPARSE_ID_LIMIT):
        raise best.error(k, f"{what} id {ids[k]} implies {count} {what}s but there are {total} interactions; "
                            "ids must be 0-based and dense (re-index them)")
    return count


def read_tiktok(folder: str | Path, name: str | None = None) -> Dataset:
    """Read a folder in the MMSSL json layout (see the module docstring for what is accepted).

    Raises DataError naming the file and the user key for bad input:
    invalid JSON, non-integer user keys or item ids, item ids beyond the
    feature rows, empty splits, users with valid/test items but none in
    train; FeatureError naming the ``.npy`` file for bad features.
    """
    folder = existing_folder(folder)
    source = json_folder(folder)
    if source is None:
        raise DataError(f"no {SPLIT_FILES['train']} here or in {LATTICE_SUBFOLDER}/", path=folder)
    parts = {split: _read_split_file(source / fname) for split, fname in SPLIT_FILES.items()}
    ordered = [parts[s] for s in SPLITS]

    features, feature_files = read_feature_files(folder)
    n_users = _count(ordered, "users", "user")
    n_items = max(x.shape[0] for x in features.values()) if features else _count(ordered, "items", "item")
    check_feature_rows(features, feature_files, n_items)
    for part in ordered:
        if part.items.size == 0:
            raise DataError("no interactions: every user's list is empty", path=part.path)
        out = np.flatnonzero(part.items >= n_items)
        if out.size:
            raise part.error(int(out[0]), f"item id {part.items[out[0]]} out of range [0, {n_items})"
                             + (" (n_items = feature rows)" if features else ""))
    has_train = np.zeros(n_users, dtype=bool)
    has_train[parts["train"].users] = True
    for split in ("valid", "test"):
        part = parts[split]
        orphan = np.flatnonzero(~has_train[part.users])
        if orphan.size:
            raise part.error(int(orphan[0]), f"user {part.users[orphan[0]]} has {split} items "
                                             f"but no training items in {SPLIT_FILES['train']}", position=False)
    users = np.concatenate([p.users for p in ordered])
    items = np.concatenate([p.items for p in ordered])
    labels = np.repeat(np.arange(len(ordered)), [p.users.size for p in ordered])
    starts = np.cumsum([0] + [p.users.size for p in ordered])

    def where(i: int) -> str:
        j = int(np.searchsorted(starts, i, side="right")) - 1
        return f"{ordered[j].path.name} {ordered[j].describe(i - int(starts[j]))}"
    keep = first_occurrences(users, items, labels, n_items, source, where)
    users, items, labels = users[keep], items[keep], labels[keep]
    splits = {s: Interactions(users[labels == k], items[labels == k]) for k, s in enumerate(SPLITS)}
    with feature_errors_name_files(feature_files):
        return Dataset(name=name or folder.name, n_users=n_users, n_items=n_items,
                       features=features, path=folder, **splits)
