"""The Dataset object every model, denoiser and experiment reads (docs/design.md, Contracts).

A Dataset is immutable, holds numpy arrays only (it never touches torch
devices) and validates itself on construction, so every reader and builder
gets the same checks of its input for free.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import operator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Mapping

import numpy as np
import scipy.sparse as sp

from ..errors import DataError, FeatureError
from .split import split_labels

SPLITS = ("train", "valid", "test")
_CHUNK_ROWS = 4096


@dataclass(frozen=True, eq=False)
class Interactions:
    """One split of (user, item[, timestamp]) interactions.

    users, items: int64 [n]; timestamps: float64 [n] or None. Ids given as
    floats are accepted only when every value is integral (DataError otherwise);
    other dtypes (bool, str, object) are refused.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray | None = None

    def __post_init__(self):
        users = _as_ids("user", self.users)
        items = _as_ids("item", self.items)
        if users.shape != items.shape:
            raise DataError(f"users ({users.size}) and items ({items.size}) differ in length")
        object.__setattr__(self, "users", users)
        object.__setattr__(self, "items", items)
        if self.timestamps is not None:
            ts = np.ascontiguousarray(self.timestamps, dtype=np.float64).reshape(-1)
            if ts.shape != users.shape:
                raise DataError(f"timestamps ({ts.size}) and users ({users.size}) differ in length")
            object.__setattr__(self, "timestamps", ts)

    def __len__(self) -> int:
        return int(self.users.size)

    def keys(self, n_items: int) -> np.ndarray:
        """Pair keys ``user * n_items + item`` (int64 [n]), for set operations."""
        return self.users * np.int64(n_items) + self.items

    def take(self, index: np.ndarray) -> "Interactions":
        """The interactions at ``index`` (a bool mask or integer positions)."""
        ts = None if self.timestamps is None else self.timestamps[index]
        return Interactions(self.users[index], self.items[index], ts)

    @staticmethod
    def concat(parts: "list[Interactions]") -> "Interactions":
        with_ts = [p.timestamps is not None for p in parts]
        ts = np.concatenate([p.timestamps for p in parts]) if all(with_ts) else None
        return Interactions(np.concatenate([p.users for p in parts]),
                            np.concatenate([p.items for p in parts]), ts)


@dataclass(frozen=True, eq=False)
class NoiseTruth:
    """Ground truth of planted noise (``data.noise``).

    noisy_interactions: bool [len(train)], True where the training interaction
        was injected (``add``).
    noisy_features: modality -> bool [n_items], True where the item's row of
        that modality was swapped or misaligned.
    removed: the clean training interactions that ``remove`` dropped.
    spec: what was done (the content of ``noise.json``).
    """

    noisy_interactions: np.ndarray
    noisy_features: Mapping[str, np.ndarray] = field(default_factory=dict)
    removed: Interactions = field(default_factory=lambda: Interactions(np.zeros(0), np.zeros(0)))
    spec: Mapping = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "noisy_interactions",
                           np.ascontiguousarray(self.noisy_interactions, dtype=bool).reshape(-1))
        object.__setattr__(self, "noisy_features",
                           {m: np.ascontiguousarray(v, dtype=bool).reshape(-1)
                            for m, v in self.noisy_features.items()})


@dataclass(frozen=True, eq=False)
class Dataset:
    """Users, items, three interaction splits, item features and optional noise truth.

    features: modality name -> float32 [n_items, d_m] (row i = item i); arrays
        may be read-only memory maps.
    path: the folder the dataset was read from, if any (informational).
    """

    name: str
    n_users: int
    n_items: int
    train: Interactions
    valid: Interactions
    test: Interactions
    features: Mapping[str, np.ndarray] = field(default_factory=dict)
    noise: NoiseTruth | None = None
    path: Path | None = None

    def __post_init__(self):
        where = self.path if self.path is not None else self.name
        for size in ("n_users", "n_items"):
            try:
                object.__setattr__(self, size, operator.index(getattr(self, size)))
            except TypeError:
                raise DataError(f"{size} must be an integer, got {getattr(self, size)!r}",
                                path=where, field=size) from None
        object.__setattr__(self, "features", {_modality_name(m): _as_float32(m, x, where)
                                              for m, x in self.features.items()})
        self.validate()

    @classmethod
    def from_interactions(cls, name: str, users, items, *, n_users: int | None = None,
                          n_items: int | None = None, timestamps=None,
                          features: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                          ratios=(0.8, 0.1, 0.1), chronological: bool = False,
                          path: Path | None = None) -> "Dataset":
        """A Dataset from one log of interactions, split per user by MMRec's rule (``split_labels``).

        users, items: 0-based int ids [n] (one row per interaction); timestamps: [n] or None
            (kept in every split; required when ``chronological``);
        n_users, n_items: the id ranges (default: the largest id + 1; give them when some
            ids have no interaction, e.g. items with features only);
        features: modality -> float [n_items, d_m], row i = item i; path: where it was read from.
        A repeated (user, item) pair keeps its first row (one interaction per pair; warned).
        The split: each user's interactions 8:1:1 (``ratios``) at random under ``seed``, or
        its latest in test when ``chronological``; a user with fewer than 3 keeps all in
        train. Raises DataError for ids or features the Dataset refuses.
        """
        where = path if path is not None else name
        users, items = _as_ids("user", users), _as_ids("item", items)
        if users.size == 0 or users.size != items.size:
            raise DataError(f"give one user and one item id per interaction, got {users.size} users "
                            f"and {items.size} items", path=where)
        if timestamps is not None:
            timestamps = np.ascontiguousarray(timestamps, dtype=np.float64).reshape(-1)
            if timestamps.size != users.size:
                raise DataError(f"{timestamps.size} timestamps for {users.size} interactions", path=where,
                                field="timestamps")
        elif chronological:
            raise DataError("a chronological split needs timestamps", path=where, field="timestamps")
        n_users = int(users.max()) + 1 if n_users is None else n_users
        n_items = int(items.max()) + 1 if n_items is None else n_items
        for fld, ids, bound in (("user", users, n_users), ("item", items, n_items)):
            _check_id_range(ids, bound, fld, where, fld)
        _, first = np.unique(users * np.int64(n_items) + items, return_index=True)
        if first.size < users.size:  # one interaction per pair: a repeat could sit in train and test at once
            logging.getLogger("mmdenoise").warning(
                "%s: %d repeated (user, item) row(s) dropped; each pair keeps its first row",
                where, users.size - first.size)
            kept = np.sort(first)
            users, items = users[kept], items[kept]
            timestamps = None if timestamps is None else timestamps[kept]
        labels = split_labels(users, seed=seed, ratios=ratios, timestamps=timestamps, chronological=chronological)
        splits = [Interactions(users[labels == k], items[labels == k],
                               None if timestamps is None else timestamps[labels == k]) for k in range(3)]
        return cls(name, n_users, n_items, *splits, features=features or {}, path=path)

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise DataError naming the split, row and field of any id out of range, empty split, non-finite
        timestamp, user with held-out but no training data, bad feature array or mismatched noise truth."""
        where = self.path if self.path is not None else self.name
        if self.n_users <= 0 or self.n_items <= 0:
            raise DataError(f"n_users={self.n_users}, n_items={self.n_items}: both must be positive",
                            path=where)
        for split in SPLITS:
            inter: Interactions = getattr(self, split)
            if len(inter) == 0:
                raise DataError(f"the {split} split is empty", path=where)
            for fld, ids, bound in (("user", inter.users, self.n_users), ("item", inter.items, self.n_items)):
                _check_id_range(ids, bound, fld, where, f"{split}.{fld}")
            if inter.timestamps is not None:
                bad = np.flatnonzero(~np.isfinite(inter.timestamps))
                if bad.size:
                    raise DataError(f"timestamp {inter.timestamps[bad[0]]} is not finite",
                                    path=where, row=int(bad[0]), field=f"{split}.timestamp")
        has_train = np.zeros(self.n_users, dtype=bool)
        has_train[self.train.users] = True
        for split in ("valid", "test"):
            users = getattr(self, split).users
            orphan = np.flatnonzero(~has_train[users])
            if orphan.size:
                raise DataError(f"user {users[orphan[0]]} has {split} interactions but no training data",
                                path=where, row=int(orphan[0]), field=f"{split}.user")
        for name, x in self.features.items():
            _check_features(name, x, self.n_items, where)
        if self.noise is not None:
            if self.noise.noisy_interactions.size != len(self.train):
                raise DataError(f"noise mask has {self.noise.noisy_interactions.size} entries for "
                                f"{len(self.train)} training interactions", path=where, field="noise")
            for m, mask in self.noise.noisy_features.items():
                if m not in self.features:
                    raise DataError(f"noise mask names unknown modality {m!r}; modalities: "
                                    f"{sorted(self.features)}", path=where, field="noise")
                if mask.size != self.n_items:
                    raise DataError(f"feature noise mask of {m!r} has {mask.size} rows for "
                                    f"{self.n_items} items", path=where, field="noise")

    # ------------------------------------------------------------ derived data
    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    def split(self, name: str) -> Interactions:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; splits: {SPLITS}")
        return getattr(self, name)

    def interaction_matrix(self, split: str = "train") -> sp.csr_matrix:
        """Binary user-item matrix of a split, float32 CSR [n_users, n_items] (cached)."""
        cache = self.__dict__.setdefault("_matrices", {})
        if split not in cache:
            inter = self.split(split)
            m = sp.csr_matrix((np.ones(len(inter), dtype=np.float32), (inter.users, inter.items)),
                              shape=(self.n_users, self.n_items))
            m.sum_duplicates()
            m.data[:] = 1.0
            cache[split] = m
        return cache[split]

    @cached_property
    def train_items(self) -> np.ndarray:
        """Sorted ids of items with at least one training interaction (int64)."""
        return np.unique(self.train.items)

    @cached_property
    def item_popularity(self) -> np.ndarray:
        """Training interaction count per item, int64 [n_items]."""
        return np.bincount(self.train.items, minlength=self.n_items).astype(np.int64)

    @cached_property
    def fingerprint(self) -> str:
        """Content hash (hex, 16 chars) of sizes, splits, features and noise truth."""
        h = hashlib.blake2b(digest_size=8)
        h.update(f"{self.n_users}:{self.n_items}".encode())
        for split in SPLITS:
            inter = self.split(split)
            for arr in (inter.users, inter.items, inter.timestamps):
                h.update(b"|" if arr is None else np.ascontiguousarray(arr).tobytes())
        for name in sorted(self.features):
            x = self.features[name]
            h.update(f"{name}:{x.shape}".encode())
            for start in range(0, x.shape[0], _CHUNK_ROWS):
                h.update(np.ascontiguousarray(x[start:start + _CHUNK_ROWS]).tobytes())
        if self.noise is not None:
            h.update(self.noise.noisy_interactions.tobytes())
            for m in sorted(self.noise.noisy_features):
                h.update(m.encode() + self.noise.noisy_features[m].tobytes())
        return h.hexdigest()

    def replace(self, **changes) -> "Dataset":
        """A new, re-validated Dataset with some fields changed."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}:{x.shape[1]}" for m, x in self.features.items())
        return (f"Dataset({self.name!r}, users={self.n_users}, items={self.n_items}, "
                f"train/valid/test={len(self.train)}/{len(self.valid)}/{len(self.test)}, "
                f"features=[{mods}], noise={'yes' if self.noise is not None else 'no'})")


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values of a 1-D array, sorted (``np.unique`` without its slow hash path for
    high-cardinality int64 keys in numpy 2.x: ~15× faster on 500k pair keys)."""
    values = np.sort(values, axis=None)
    return values[np.r_[True, values[1:] != values[:-1]]] if values.size else values


def _as_ids(field_name: str, values) -> np.ndarray:
    """Ids as contiguous int64 [n]; floats must be integral, other dtypes are refused."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return np.ascontiguousarray(arr, dtype=np.int64).reshape(-1)
    if arr.dtype.kind == "f":
        flat = arr.reshape(-1)
        bad = np.flatnonzero(~np.isfinite(flat) | (flat != np.floor(flat)))
        if bad.size:
            raise DataError(f"{field_name} ids must be integers, got {float(flat[bad[0]])!r}",
                            row=int(bad[0]), field=field_name)
        return np.ascontiguousarray(flat, dtype=np.int64)
    raise DataError(f"{field_name} ids must be integers, got dtype {arr.dtype}", field=field_name)


def _check_id_range(ids: np.ndarray, bound: int, kind: str, where, field_name: str) -> None:
    """DataError naming the first of ``ids`` outside [0, bound), its row and ``field_name``."""
    bad = np.flatnonzero((ids < 0) | (ids >= bound))
    if bad.size:
        raise DataError(f"{kind} id {ids[bad[0]]} out of range [0, {bound})", path=where, row=int(bad[0]),
                        field=field_name)


def _modality_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise DataError(f"modality names must be non-empty strings, got {name!r}", field="features")
    return name


def _as_float32(name: str, x: np.ndarray, where=None) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype == np.float32:
        return x
    if x.dtype.kind not in "iuf":
        raise FeatureError(f"features of modality {name!r} have dtype {x.dtype}; expected float or integer",
                           path=where, field=name)
    return x.astype(np.float32)


def _check_features(name: str, x: np.ndarray, n_items: int, where) -> None:
    """Shape, finiteness and non-zero rows of one modality, in row chunks (memory maps stay lazy).

    Raises FeatureError with ``field`` = modality and ``row`` = first bad item.
    """
    if x.ndim != 2:
        raise FeatureError(f"features must be 2-D [n_items, d], got shape {x.shape}", path=where, field=name)
    if x.shape[0] != n_items:
        raise FeatureError(f"feature row count {x.shape[0]} != n_items {n_items}", path=where, field=name)
    if x.shape[1] == 0:
        raise FeatureError("features have 0 columns", path=where, field=name)
    for start in range(0, n_items, _CHUNK_ROWS):
        block = np.asarray(x[start:start + _CHUNK_ROWS])
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = start + int(np.flatnonzero(~finite)[0])
            raise FeatureError("NaN or inf in features", path=where, row=row, field=name)
        zero = ~np.any(block != 0, axis=1)
        if zero.any():
            row = start + int(np.flatnonzero(zero)[0])
            raise FeatureError("all-zero feature row (cosine similarity would be undefined)",
                               path=where, row=row, field=name)
