"""A small synthetic dataset with planted cluster structure, shared by the tests.

Users and items fall in ``n_clusters`` clusters; a user's interactions come
from its own cluster with probability ``purity`` (popularity-skewed within the
cluster), otherwise from anywhere. Each modality is the item's cluster
indicator through a random linear map plus Gaussian noise, so content is
informative and a trained model should beat popularity.
"""
from __future__ import annotations

import numpy as np

from mmdenoise.data import Dataset


def planted_dataset(n_users: int = 200, n_items: int = 120, *, n_clusters: int = 4, per_user: int = 15,
                    purity: float = 0.9, seed: int = 0, modalities: dict[str, int] | None = None,
                    feature_noise: float = 0.5, name: str = "planted") -> Dataset:
    rng = np.random.default_rng(seed)
    modalities = {"image": 32, "text": 16} if modalities is None else modalities
    user_cluster = rng.integers(0, n_clusters, n_users)
    item_cluster = np.arange(n_items) % n_clusters
    popularity = rng.pareto(1.5, n_items) + 1.0
    # affinity: in-cluster items get most of the mass; Gumbel top-k samples without replacement
    same = user_cluster[:, None] == item_cluster[None, :]
    mass = np.where(same, purity / same.sum(1, keepdims=True),
                    (1 - purity) / (~same).sum(1, keepdims=True)) * popularity[None, :]
    keys = np.log(mass) + rng.gumbel(size=mass.shape)
    chosen = np.argpartition(-keys, per_user, axis=1)[:, :per_user]
    users = np.repeat(np.arange(n_users), per_user)
    items = chosen.reshape(-1)
    times = rng.random(users.size) * 1e6
    onehot = np.eye(n_clusters)[item_cluster]
    features = {m: (onehot @ rng.normal(size=(n_clusters, d)) + feature_noise * rng.normal(size=(n_items, d)))
                .astype(np.float32) for m, d in modalities.items()}
    return Dataset.from_interactions(name, users, items, n_users=n_users, n_items=n_items, timestamps=times,
                                     features=features, seed=seed)
