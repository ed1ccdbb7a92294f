"""Noise injection with ground truth (DESIGN §3.4): the papers' robustness protocols.

Noise touches the training split only; validation and test are kept as they
are. Ratios are relative to the clean training set, and noise is always drawn
from clean data: noising an already-noised dataset is refused, so levels
never accumulate.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset, Interactions, NoiseTruth
from .mmrec import write_mmrec

_MAX_ROUNDS = 100


def _check_ratio(name: str, ratio: float) -> float:
    if not 0.0 <= ratio < 1.0:
        raise DataError(f"{name} ratio must be in [0, 1), got {ratio}", field=name)
    return float(ratio)


def _check_modalities(dataset: Dataset, spec: dict[str, float], option: str) -> dict[str, float]:
    for modality, ratio in spec.items():
        if modality not in dataset.features:
            raise DataError(f"--{option} names unknown modality {modality!r}; modalities: "
                            f"{', '.join(dataset.features) or 'none'}", field=option)
        _check_ratio(f"{option} {modality}", ratio)
    return dict(spec)


def _removal(dataset: Dataset, n_remove: int, rng) -> np.ndarray:
    """bool [len(train)], True for ``n_remove`` random training rows, never a user's last one."""
    train = dataset.train
    priority = rng.random(len(train))
    order = np.lexsort((priority, train.users))
    last_of_user = np.r_[train.users[order][1:] != train.users[order][:-1], True]
    eligible = order[~last_of_user]
    if n_remove > eligible.size:
        raise DataError(f"cannot remove {n_remove} interactions and keep one per user "
                        f"(only {eligible.size} are removable)")
    removed = np.zeros(len(train), dtype=bool)
    removed[rng.choice(eligible, n_remove, replace=False)] = True
    return removed


def _additions(dataset: Dataset, n_add: int, rng) -> Interactions:
    """``n_add`` distinct (user, item) pairs seen in no split; users ∝ training activity, items uniform."""
    n_items = dataset.n_items
    seen = np.unique(np.concatenate([dataset.split(s).keys(n_items) for s in ("train", "valid", "test")]))
    chosen = np.zeros(0, dtype=np.int64)
    for _ in range(_MAX_ROUNDS):
        need = n_add - chosen.size
        if need == 0:
            break
        users = dataset.train.users[rng.integers(0, len(dataset.train), 2 * need + 16)]
        keys = users * np.int64(n_items) + rng.integers(0, n_items, users.size)
        keys = keys[~np.isin(keys, seen) & ~np.isin(keys, chosen)]
        _, first = np.unique(keys, return_index=True)  # distinct, in draw order
        chosen = np.concatenate([chosen, keys[np.sort(first)][:need]])
    else:
        raise DataError(f"could not find {n_add} unseen pairs to add (the data is too dense)")
    users, items = chosen // n_items, chosen % n_items
    timestamps = None
    if dataset.train.timestamps is not None:
        # a time inside the user's own training period
        lo = np.full(dataset.n_users, np.inf)
        hi = np.full(dataset.n_users, -np.inf)
        np.minimum.at(lo, dataset.train.users, dataset.train.timestamps)
        np.maximum.at(hi, dataset.train.users, dataset.train.timestamps)
        timestamps = np.floor(lo[users] + rng.random(users.size) * (hi[users] - lo[users]))
    return Interactions(users, items, timestamps)


def inject_noise(dataset: Dataset, *, add: float = 0.0, remove: float = 0.0,
                 swap: dict[str, float] | None = None, misalign: dict[str, float] | None = None,
                 seed: int = 0) -> Dataset:
    """A noised copy of ``dataset`` with its ground truth in ``.noise``.

    add: ⌊add·|train|⌋ random unseen pairs appended to train (flagged).
    remove: ⌊remove·|train|⌋ random training interactions dropped, never a
        user's last one (recorded in ``noise.removed``).
    swap {m: r}: for ⌊r·I⌋ items, modality m's row replaced by another random
        item's row (flagged per item).
    misalign {m: r}: ⌊r·I⌋ items' rows of modality m permuted among themselves
        so that every chosen item gets another's row (flagged per item).
    """
    if dataset.noise is not None:
        raise DataError(f"{dataset.name} already carries planted noise; noise is drawn from clean data "
                        "(use the clean source for every level)")
    add, remove = _check_ratio("add", add), _check_ratio("remove", remove)
    swap = _check_modalities(dataset, swap or {}, "swap")
    misalign = _check_modalities(dataset, misalign or {}, "misalign")
    rng = np.random.default_rng([seed, 3])
    n_train = len(dataset.train)
    n_add, n_remove = math.floor(add * n_train), math.floor(remove * n_train)

    removed = _removal(dataset, n_remove, rng)
    kept = dataset.train.take(~removed)
    added = _additions(dataset, n_add, rng)
    train = Interactions.concat([kept, added]) if n_add else kept
    noisy = np.r_[np.zeros(len(kept), dtype=bool), np.ones(n_add, dtype=bool)]

    features = dict(dataset.features)
    noisy_features = {}
    for modality in sorted(set(swap) | set(misalign)):
        x = np.array(features[modality], dtype=np.float32)  # copy only the modality that changes
        source = x.copy()
        flags = np.zeros(dataset.n_items, dtype=bool)
        n_swap = math.floor(swap.get(modality, 0.0) * dataset.n_items)
        if n_swap:
            items = rng.choice(dataset.n_items, n_swap, replace=False)
            donors = (items + rng.integers(1, dataset.n_items, n_swap)) % dataset.n_items
            x[items] = source[donors]
            flags[items] = True
        n_mis = math.floor(misalign.get(modality, 0.0) * dataset.n_items)
        if n_mis == 1:
            raise DataError("misalign needs at least 2 items to permute", field=f"misalign {modality}")
        if n_mis:
            items = rng.permutation(np.flatnonzero(~flags))[:n_mis] if (~flags).sum() >= n_mis \
                else rng.choice(dataset.n_items, n_mis, replace=False)
            x[items] = source[np.roll(items, 1)]  # a cyclic shift: nobody keeps its own row
            flags[items] = True
        features[modality] = x
        noisy_features[modality] = flags

    spec = {"add": add, "remove": remove, "swap": swap, "misalign": misalign, "seed": seed,
            "source": {"name": dataset.name, "fingerprint": dataset.fingerprint},
            "counts": {"added": int(n_add), "removed": int(n_remove),
                       **{f"noisy_items_{m}": int(f.sum()) for m, f in noisy_features.items()}}}
    truth = NoiseTruth(noisy, noisy_features, dataset.train.take(removed), spec)
    return dataset.replace(train=train, features=features, noise=truth, path=None)


def write_noised(dataset: Dataset, out: str | Path, *, add: float = 0.0, remove: float = 0.0,
                 swap: dict[str, float] | None = None, misalign: dict[str, float] | None = None,
                 seed: int = 0, overwrite: bool = False) -> Path:
    """``inject_noise`` and write the result (MMRec layout + noise.json + noise_mask.npz) atomically."""
    noised = inject_noise(dataset, add=add, remove=remove, swap=swap, misalign=misalign, seed=seed)
    name = Path(out).name
    return write_mmrec(noised.replace(name=name), out, overwrite=overwrite, name=name)
