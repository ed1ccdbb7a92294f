"""Fixtures shared by every test package.

``make_dataset`` is a factory for small valid Datasets::

    def test_something(make_dataset):
        ds = make_dataset(n_users=50, seed=3, noise=True)

The same builder is importable as ``tests.conftest.build_dataset`` for
module-scoped fixtures. ``PickleTrap`` checks that data files are loaded
without unpickling.
"""
from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
import pytest

from mmdenoise.data import Dataset, Interactions, NoiseTruth

DEFAULT_MODALITIES = {"image": 16, "text": 8}


def build_dataset(n_users: int = 30, n_items: int = 40, seed: int = 0,
                  modalities: Mapping[str, int] | None = None, noise: bool = False,
                  *, max_per_user: int = 12, timestamps: bool = True, name: str = "small") -> Dataset:
    """A small valid Dataset, deterministic in ``seed``.

    Every user has between 3 and ``max_per_user`` distinct items (so every
    user has train, valid and test interactions under ``split_labels``);
    interactions are in shuffled order (not grouped by user). Timestamps
    (float64) mix integral and fractional values such as ``x.1`` that have
    no exact binary form. Features are Gaussian float32 [n_items, d] per
    modality (``modalities=None`` means image:16, text:8; ``{}`` means none).
    With ``noise``, a NoiseTruth flags ~20% of training interactions, ~10% of
    items per modality (at least one each) and lists a few removed pairs.
    """
    if n_items < 3:
        raise ValueError("n_items must be at least 3 (every user needs 3 distinct items)")
    modalities = DEFAULT_MODALITIES if modalities is None else dict(modalities)
    rng = np.random.default_rng(seed)
    per_user = rng.integers(3, min(max_per_user, n_items) + 1, size=n_users)
    # each user's items: the first per_user entries of a random permutation of all items
    perms = np.argsort(rng.random((n_users, n_items)), axis=1)
    chosen = np.arange(n_items)[None, :] < per_user[:, None]
    users = np.repeat(np.arange(n_users), per_user)
    items = perms[chosen]
    order = rng.permutation(users.size)
    users, items = users[order], items[order]
    times = rng.integers(1_500_000_000, 1_600_000_000, size=users.size).astype(np.float64)
    times += rng.choice([0.0, 0.0, 0.1, 0.25, 1 / 3], size=users.size)
    features = {m: rng.normal(size=(n_items, d)).astype(np.float32) for m, d in modalities.items()}
    dataset = Dataset.from_interactions(name, users, items, n_users=n_users, n_items=n_items,
                                        timestamps=times if timestamps else None, features=features, seed=seed)
    if noise:
        noisy = rng.random(len(dataset.train)) < 0.2
        noisy[0] = True
        flags = {}
        for m in modalities:
            flags[m] = rng.random(n_items) < 0.1
            flags[m][rng.integers(n_items)] = True
        removed = Interactions(rng.integers(0, n_users, 3), rng.integers(0, n_items, 3))
        spec = {"add": 0.2, "remove": 0.0, "swap": {m: 0.1 for m in modalities}, "seed": seed}
        dataset = dataset.replace(noise=NoiseTruth(noisy, flags, removed, spec))
    return dataset


@pytest.fixture
def make_dataset():
    """The ``build_dataset`` factory (see the module docstring)."""
    return build_dataset


def _spring_trap(marker: str):
    """Runs only if a pickle holding a PickleTrap is loaded: leaves ``marker`` behind."""
    open(marker, "w").close()
    return None


class PickleTrap:
    """An object whose unpickling creates the file ``marker``.

    Save it inside data (``np.save(..., np.array([PickleTrap(m)], dtype=object),
    allow_pickle=True)`` or ``pickle.dumps``), read the data, then assert that
    ``marker`` does not exist: no code ran from the data.
    """

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return _spring_trap, (self.marker,)


@pytest.fixture(scope="session")
def ml100k():
    """Real ml-100k, built once into the data home (``$MMDENOISE_HOME``) and reused by later sessions;
    a warning in the test summary says so when this session built it."""
    from mmdenoise.data import load_dataset
    from mmdenoise.data.registry import dataset_folder
    folder = dataset_folder("ml-100k")
    built = folder.is_dir()
    dataset = load_dataset("ml-100k")
    if not built:
        warnings.warn(f"the tests built ml-100k into the data home, {folder} ($MMDENOISE_HOME); "
                      "later sessions and `make demo` reuse it", stacklevel=1)
    return dataset
