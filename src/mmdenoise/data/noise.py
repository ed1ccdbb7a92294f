"""Noise injection with ground truth: the papers' robustness protocols.

Rules shared by every kind of noise:

- only the training split changes; ``valid`` and ``test`` are the clean
  dataset's own Interactions objects, untouched;
- every count is ⌊ratio · size of the CLEAN data⌋ (|train| for ``add`` and
  ``remove``, n_items for ``swap`` and ``misalign``), the ratio taken as the
  decimal it prints as, so binary rounding never loses one;
- levels never accumulate: noise is always drawn from clean data, so noising
  a dataset that already carries planted noise is refused (DataError). A
  study makes each level from the same clean source;
- levels are nested: under one seed, the pairs added, the rows removed and
  the items swapped at a lower ratio are a subset of those at a higher one
  (each kind of noise has its own random stream, and every draw is a prefix
  of a stream that does not depend on the ratio), so a noise curve measures
  more of the same noise rather than a fresh draw per level;
- the ground truth goes to ``Dataset.noise`` (NoiseTruth) and, through
  ``write_noised``, to noise.json + noise_mask.npz.
"""
from __future__ import annotations

import math
import numbers
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import DataError, did_you_mean
from .dataset import SPLITS, Dataset, Interactions, NoiseTruth, sorted_unique
from .mmrec import write_mmrec

_MAX_ROUNDS = 100
_MAX_BLOCKS = 1000
_ROW_CHUNK = 4096
_HASH_CHUNK = 512


def inject_noise(dataset: Dataset, *, add: float = 0.0, remove: float = 0.0,
                 swap: dict[str, float] | None = None, misalign: dict[str, float] | None = None,
                 seed: int = 0) -> Dataset:
    """A noised copy of a clean ``dataset``, its ground truth in ``.noise``.

    add: ⌊add·|train|⌋ random (user, item) pairs that are in none of the
        user's splits and distinct from each other, appended to train and
        flagged in ``noise.noisy_interactions``. Users are drawn ∝ their
        training activity (a random training row's user: noise lands where
        interactions are, as in logged-click noise), items uniformly over all
        n_items. With timestamps, an added pair gets a time drawn uniformly in
        its user's training [min, max] (an integer when the training times are).
    remove: ⌊remove·|train|⌋ random training interactions dropped, never a
        user's last one; they are kept (with timestamps) in ``noise.removed``.
    swap {m: r}: for ⌊r·n_items⌋ random items, modality m's row is replaced by
        another random item's row that differs from its own.
    misalign {m: r}: ⌊r·n_items⌋ items' rows of modality m are permuted among
        themselves by a random derangement (every chosen item gets another
        chosen item's row, and never one identical to its own).
    Items chosen for swap and misalign of one modality are disjoint; their
    rows are flagged in ``noise.noisy_features[m]`` (bool [n_items]). Only the
    modalities that change are copied (into memory); the others stay as they
    are (memory maps included). Ratios must be in [0, 1]. The training order
    is: kept clean rows in their original order, then the added rows.
    """
    if dataset.noise is not None:
        raise DataError(f"{dataset.name} already carries planted noise; noise is drawn from clean data "
                        "(noise the clean source once per level)")
    add, remove = _check_ratio("add", add), _check_ratio("remove", remove)
    swap = _check_modalities(dataset, swap, "swap")
    misalign = _check_modalities(dataset, misalign, "misalign")
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}", field="seed")
    n_train = len(dataset.train)
    n_add, n_remove = _count(add, n_train), _count(remove, n_train)
    removed = _removed_rows(dataset.train, n_remove, _stream(seed, "remove"))
    kept = dataset.train.take(~removed)
    added = _added_pairs(dataset, n_add, _stream(seed, "add"))
    train = Interactions.concat([kept, added])
    noisy = np.r_[np.zeros(len(kept), dtype=bool), np.ones(n_add, dtype=bool)]

    features = dict(dataset.features)
    noisy_features = {}
    for modality in sorted(set(swap) | set(misalign)):
        n_swap = _count(swap.get(modality, 0.0), dataset.n_items)
        n_misalign = _count(misalign.get(modality, 0.0), dataset.n_items)
        features[modality], noisy_features[modality] = _feature_noise(
            features[modality], n_swap, n_misalign, _stream(seed, "features", modality), modality)

    spec = {"add": add, "remove": remove, "swap": swap, "misalign": misalign, "seed": int(seed),
            "add_users": "by training activity", "add_items": "uniform",
            "source": {"name": dataset.name, "fingerprint": dataset.fingerprint,
                       **({"path": str(dataset.path)} if dataset.path is not None else {})},
            "counts": {"train_clean": n_train, "added": n_add, "removed": n_remove,
                       **{f"noisy_items_{m}": int(f.sum()) for m, f in noisy_features.items()}}}
    truth = NoiseTruth(noisy, noisy_features, dataset.train.take(removed), spec)
    return dataset.replace(train=train, features=features, noise=truth, path=None)


def write_noised(dataset: Dataset, out: str | Path, *, add: float = 0.0, remove: float = 0.0,
                 swap: dict[str, float] | None = None, misalign: dict[str, float] | None = None,
                 seed: int = 0, overwrite: bool = False) -> Path:
    """``inject_noise`` and write the result atomically as an MMRec folder; return ``out``.

    The folder (named, with its ``.inter`` file, after ``out``) gets
    noise.json (the spec: ratios, seed, source name + fingerprint, counts) and
    noise_mask.npz (the masks and the removed interactions).
    """
    noised = inject_noise(dataset, add=add, remove=remove, swap=swap, misalign=misalign, seed=seed)
    name = Path(out).name
    return write_mmrec(noised.replace(name=name), out, overwrite=overwrite, name=name)


# ------------------------------------------------------------------ options
def _stream(seed: int, kind: str, modality: str = "") -> np.random.Generator:
    """The random stream of one kind of noise (and modality), independent of every other."""
    return np.random.default_rng([seed, 3, {"remove": 1, "add": 2, "features": 3}[kind], *modality.encode()])


def _check_ratio(option: str, ratio) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not 0.0 <= ratio <= 1.0:
        raise DataError(f"{option} ratio must be a number in [0, 1], got {ratio!r}", field=option)
    return float(ratio)


def _count(ratio: float, size: int) -> int:
    """⌊ratio·size⌋ with the ratio read as the decimal it prints as (0.58·50 is 29, not 28)."""
    return math.floor(Fraction(repr(ratio)) * size)


def _check_modalities(dataset: Dataset, spec: dict[str, float] | None, option: str) -> dict[str, float]:
    spec = dict(spec or {})
    for modality, ratio in spec.items():
        if modality not in dataset.features:
            raise DataError(f"{option} names unknown modality {modality!r}"
                            f"{did_you_mean(modality, dataset.features)}; modalities: "
                            f"{', '.join(dataset.features) or 'none'}", field=option)
        spec[modality] = _check_ratio(f"{option} {modality}", ratio)
    return spec


# ------------------------------------------------------------- interactions
def _removed_rows(train: Interactions, n_remove: int, rng: np.random.Generator) -> np.ndarray:
    """bool [len(train)]: ``n_remove`` random rows, never a user's last one.

    One random row per user is kept aside; the removed rows are the first
    ``n_remove`` of a random order of the others (nested across ratios).
    """
    order = np.lexsort((rng.random(len(train)), train.users))
    sorted_users = train.users[order]
    kept_aside = np.r_[sorted_users[1:] != sorted_users[:-1], True]  # one (random) row per user
    removable = order[~kept_aside]
    if n_remove > removable.size:
        raise DataError(f"cannot remove {n_remove} training interactions and keep one per user "
                        f"(only {removable.size} are removable)", field="remove")
    removed = np.zeros(len(train), dtype=bool)
    removed[rng.permutation(removable)[:n_remove]] = True
    return removed


def _added_pairs(dataset: Dataset, n_add: int, rng: np.random.Generator) -> Interactions:
    """The first ``n_add`` distinct unseen (user, item) pairs of a random stream (rejection sampling).

    The stream comes in blocks of a size fixed by the dataset (not by
    ``n_add``), so a smaller ratio takes a prefix of a larger one's pairs.
    Users ∝ training activity, items uniform; a draw in any split or already
    taken is rejected. Each candidate carries its uniform draw for the
    timestamp, so timestamps are nested too.
    """
    n_items, train = dataset.n_items, dataset.train
    seen = sorted_unique(np.concatenate([dataset.split(s).keys(n_items) for s in SPLITS]))
    active = sorted_unique(train.users)
    seen_per_user = np.bincount(seen // n_items, minlength=dataset.n_users)[active]
    capacity = int(np.sum(n_items - seen_per_user))
    if n_add > capacity:
        raise DataError(f"cannot add {n_add} unseen pairs: the users with training data have only "
                        f"{capacity} unseen items in all", field="add")
    block = max(len(train), 1024)
    chosen, where = np.zeros(0, dtype=np.int64), np.zeros(0)
    for _ in range(_MAX_BLOCKS):
        if chosen.size >= n_add:
            break
        users = train.users[rng.integers(0, len(train), block)]
        keys = users * np.int64(n_items) + rng.integers(0, n_items, block)
        u01 = rng.random(block)
        fresh = np.flatnonzero(~np.isin(keys, seen) & ~np.isin(keys, chosen))
        _, first = np.unique(keys[fresh], return_index=True)
        fresh = fresh[np.sort(first)]  # distinct, in draw order
        chosen, where = np.r_[chosen, keys[fresh]], np.r_[where, u01[fresh]]
    if chosen.size < n_add:
        raise DataError(f"could not find {n_add} unseen pairs in {_MAX_BLOCKS * block} draws "
                        "(the data is too dense)", field="add")
    chosen, where = chosen[:n_add], where[:n_add]
    users, items = chosen // n_items, chosen % n_items
    timestamps = None
    if train.timestamps is not None:
        lo = np.full(dataset.n_users, np.inf)
        hi = np.full(dataset.n_users, -np.inf)
        np.minimum.at(lo, train.users, train.timestamps)
        np.maximum.at(hi, train.users, train.timestamps)
        timestamps = lo[users] + where * (hi[users] - lo[users])
        if np.all(train.timestamps == np.floor(train.timestamps)):
            timestamps = np.floor(timestamps)  # integral times stay integral (lo, hi are, so it stays in range)
    return Interactions(users, items, timestamps)


# ----------------------------------------------------------------- features
def _feature_noise(x: np.ndarray, n_swap: int, n_misalign: int, rng: np.random.Generator,
                   modality: str) -> tuple[np.ndarray, np.ndarray]:
    """(noised copy float32 [n_items, d], flags bool [n_items]) for one modality.

    ``x`` is read, never written (it may be a read-only memory map); the
    copy is the only full-size allocation.
    """
    n_items = x.shape[0]
    if n_swap + n_misalign > n_items:
        raise DataError(f"swap and misalign of {modality} ask for {n_swap} + {n_misalign} items of {n_items}",
                        field=modality)
    if n_misalign == 1:
        raise DataError(f"misalign of {modality} chose 1 item; a permutation needs at least 2",
                        field=f"misalign {modality}")
    if n_swap and n_items < 2:
        raise DataError(f"swap of {modality} needs at least 2 items", field=f"swap {modality}")
    # full-length draws, then prefixes: the items swapped at a lower ratio are among a higher one's
    chosen = rng.permutation(n_items)[:n_swap + n_misalign]
    swapped, misaligned = chosen[:n_swap], chosen[n_swap:]
    offsets = rng.integers(1, max(n_items, 2), n_items)

    # donors: another item, redrawn while its row equals the item's own (duplicate rows)
    donors = (swapped + offsets[:n_swap]) % n_items
    todo = np.flatnonzero(_same_rows(x, swapped, donors))
    for _ in range(_MAX_ROUNDS):
        if todo.size == 0:
            break
        donors[todo] = (swapped[todo] + rng.integers(1, n_items, todo.size)) % n_items
        todo = todo[_same_rows(x, swapped[todo], donors[todo])]
    if todo.size:
        raise DataError(f"cannot swap {modality}: item {swapped[todo[0]]}'s row is shared by nearly every item",
                        field=f"swap {modality}")
    sources = _derangement(x, misaligned, rng, modality)

    noised = np.array(x, dtype=np.float32)
    targets, sources = np.r_[swapped, misaligned], np.r_[donors, sources]
    for start in range(0, targets.size, _ROW_CHUNK):  # read rows from the clean x: no second copy
        noised[targets[start:start + _ROW_CHUNK]] = x[sources[start:start + _ROW_CHUNK]]
    flags = np.zeros(n_items, dtype=bool)
    flags[chosen] = True
    return noised, flags


def _derangement(x: np.ndarray, items: np.ndarray, rng: np.random.Generator, modality: str) -> np.ndarray:
    """For each of ``items`` (int64 [k]), the item whose row it gets: another chosen item with a different row.

    The chosen items are grouped by identical rows (classes in random order,
    items in random order within), and each takes the row of the item
    ``m`` places before it, m being the largest class: no item keeps its own
    row or gets an identical one. Without duplicate rows this is a uniformly
    random k-cycle.
    """
    if items.size == 0:
        return items
    _, row_class, sizes = np.unique(_row_hashes(x, items), return_inverse=True, return_counts=True)
    shift = int(sizes.max())
    if 2 * shift > items.size:
        raise DataError(f"cannot misalign {modality}: {shift} of the {items.size} chosen items share one row",
                        field=f"misalign {modality}")
    order = np.lexsort((rng.random(items.size), rng.permutation(sizes.size)[row_class]))
    ordered = items[order]
    sources = np.empty_like(items)
    sources[order] = ordered[(np.arange(items.size) - shift) % items.size]
    return sources


def _row_hashes(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """uint64 [len(rows)]: a hash of each row's float32 bits, equal for equal rows.

    Σ_j bits_j · c_j modulo 2^64 with fixed random odd c: integer sums do not
    depend on summation order, so identical rows always hash alike (a float
    dot product need not); −0.0 is folded onto 0.0 first.
    """
    odd = np.random.default_rng(0).integers(0, 2**63, x.shape[1], dtype=np.uint64)
    coefficients = odd * np.uint64(2) + np.uint64(1)
    out = np.empty(rows.size, dtype=np.uint64)
    for start in range(0, rows.size, _HASH_CHUNK):
        block = np.asarray(x[rows[start:start + _HASH_CHUNK]], dtype=np.float32) + np.float32(0.0)
        out[start:start + _HASH_CHUNK] = (block.view(np.uint32).astype(np.uint64) * coefficients).sum(axis=1)
    return out


def _same_rows(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool [len(a)]: row a[k] of ``x`` equals row b[k] exactly (read in chunks)."""
    out = np.zeros(a.size, dtype=bool)
    for start in range(0, a.size, _ROW_CHUNK):
        end = start + _ROW_CHUNK
        out[start:end] = ~np.any(x[a[start:end]] != x[b[start:end]], axis=1)
    return out
