"""Synthetic datasets with the shapes of the papers' datasets and a planted truth (DESIGN §3.3).

Users and items have latent factors around a few cluster centres. Each user
draws a long-tailed number of distinct items (at least 5) from a
popularity-skewed softmax of user·item affinity; every item is interacted
with at least once. Each modality is its own random non-linear projection of
the item factors plus Gaussian noise, mixed by an informativeness knob (text
more informative than image by default). Features are streamed to disk in
row chunks; the latent truth goes to ``synth_truth.npz``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_dir, save_npz, write_json
from .dataset import Dataset, Interactions
from .mmrec import write_mmrec
from .split import split_labels


@dataclass(frozen=True)
class Preset:
    users: int
    items: int
    interactions: int
    clusters: int = 20


PRESETS: dict[str, Preset] = {
    "tiny": Preset(300, 200, 5_000, clusters=4),
    "baby": Preset(19_445, 7_050, 160_792),
    "sports": Preset(35_598, 18_357, 296_337),
    "clothing": Preset(39_387, 23_033, 278_677),
    "microlens": Preset(98_129, 17_228, 705_174),
}
LATENT_DIM = 32
HIDDEN_DIM = 256
MIN_PER_USER = 5
USER_CHUNK = 2048
FEATURE_CHUNK = 2048


def _per_user_counts(rng, n_users: int, n_items: int, total: int) -> np.ndarray:
    """Long-tailed counts ≥ MIN_PER_USER summing exactly to ``total``."""
    spare = total - MIN_PER_USER * n_users
    if spare < 0:
        raise DataError(f"{total} interactions cannot give {n_users} users {MIN_PER_USER} each")
    weight = rng.lognormal(0.0, 1.0, n_users)
    extra = np.floor(weight / weight.sum() * spare).astype(np.int64)
    extra = np.minimum(extra, n_items // 2 - MIN_PER_USER)
    short = spare - extra.sum()
    room = n_items // 2 - MIN_PER_USER - extra
    while short > 0:  # hand out the remainder one by one to users with room, in random order
        take = rng.permutation(np.flatnonzero(room > 0))[:short]
        extra[take] += 1
        room[take] -= 1
        short -= take.size
    return MIN_PER_USER + extra


def _sample_items(rng, user_factors, item_factors, log_popularity, counts, sharpness: float,
                  user_cluster, item_cluster, oversample: int = 8) -> np.ndarray:
    """For each user, up to ``counts[u]`` distinct items ∝ pop_i · exp(sharpness · u·v_i) → int64 items.

    Sampling-importance-resampling, so no users × items matrix is formed:
    ``oversample``·count + 16 candidates per user come from a proposal q that
    mixes global popularity, popularity inside the user's own cluster and a
    uniform share (which keeps enough distinct candidates);
    Gumbel top-k over the distinct candidates with logits
    sharpness·u·v + log pop − log q then picks the items. Returns the items
    in user order; ``counts`` is updated in place where a user got fewer
    distinct candidates than asked (rare).
    """
    pop = np.exp(log_popularity.astype(np.float64))
    by_cluster = np.argsort(item_cluster, kind="stable")
    cum = np.cumsum(pop[by_cluster])
    cum_global = np.cumsum(pop)
    n_clusters = int(item_cluster.max()) + 1
    bounds = np.searchsorted(item_cluster[by_cluster], np.arange(n_clusters + 1))
    cluster_mass = np.diff(np.r_[0.0, cum[bounds[1:] - 1]])
    base = np.r_[0.0, cum][bounds[:-1]]

    n_users = user_factors.shape[0]
    n_cand = np.minimum(oversample * counts + 16, 4 * item_factors.shape[0])
    chosen = []
    for start in range(0, n_users, USER_CHUNK * 8):
        users = np.arange(start, min(start + USER_CHUNK * 8, n_users))
        cand_users = np.repeat(users, n_cand[users])
        r = rng.random(cand_users.size)
        source = rng.random(cand_users.size)  # < 0.4 global popularity, < 0.8 cluster popularity, else uniform
        c = user_cluster[cand_users]
        target = np.where(source < 0.4, r * cum_global[-1], base[c] + r * cluster_mass[c])
        pos_cluster = np.minimum(np.searchsorted(cum, target), pop.size - 1)
        pos_global = np.minimum(np.searchsorted(cum_global, target), pop.size - 1)
        items = np.where(source < 0.4, pos_global, by_cluster[pos_cluster])
        items = np.where(source >= 0.8, rng.integers(0, pop.size, items.size), items)
        q = (0.4 * pop[items] / cum_global[-1] + 0.2 / pop.size
             + 0.4 * (item_cluster[items] == c) * pop[items] / cluster_mass[c])
        affinity = np.einsum("nd,nd->n", user_factors[cand_users], item_factors[items])
        keys = sharpness * affinity + log_popularity[items] - np.log(q) + rng.gumbel(size=items.size)
        # distinct (user, item) pairs, then the best keys per user
        order = np.lexsort((items, cand_users))
        pair = cand_users[order] * np.int64(pop.size) + items[order]
        first = order[np.r_[True, pair[1:] != pair[:-1]]]
        cu, it, ky = cand_users[first], items[first], keys[first]
        order = np.lexsort((-ky, cu))
        cu, it = cu[order], it[order]
        starts = np.searchsorted(cu, users)
        rank = np.arange(cu.size) - np.repeat(starts, np.diff(np.r_[starts, cu.size]))
        keep = rank < counts[cu]
        counts[users] = np.bincount(cu[keep] - start, minlength=users.size)
        chosen.append(it[keep])
    return np.concatenate(chosen).astype(np.int64)


def _cover_all_items(rng, items: np.ndarray, n_items: int) -> np.ndarray:
    """Give every item ≥ 1 interaction by re-pointing spare slots (never an item's last one)."""
    missing = np.flatnonzero(np.bincount(items, minlength=n_items) == 0)
    if missing.size == 0:
        return items
    order = rng.permutation(items.size)
    shuffled = items[order]
    by_item = np.argsort(shuffled, kind="stable")
    first = np.r_[True, shuffled[by_item][1:] != shuffled[by_item][:-1]]
    spare = order[by_item[~first]]  # slots whose item keeps another occurrence
    spare = spare[rng.permutation(spare.size)][: missing.size]
    items = items.copy()
    items[spare] = missing[: spare.size]
    return items


def _stream_modality(rng, path: Path, item_factors: np.ndarray, dim: int, informativeness: float) -> None:
    """Write tanh(F A) B scaled to unit row variance, mixed with noise, as a float32 .npy in chunks."""
    a = rng.normal(size=(item_factors.shape[1], HIDDEN_DIM)).astype(np.float32) / np.sqrt(item_factors.shape[1])
    b = rng.normal(size=(HIDDEN_DIM, dim)).astype(np.float32) / np.sqrt(HIDDEN_DIM)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(item_factors.shape[0], dim))
    signal_scale = np.float32(np.sqrt(informativeness))
    noise_scale = np.float32(np.sqrt(1.0 - informativeness))
    for start in range(0, item_factors.shape[0], FEATURE_CHUNK):
        h = np.tanh(item_factors[start:start + FEATURE_CHUNK] @ a) @ b
        h /= h.std(axis=1, keepdims=True) + 1e-6
        noise = rng.standard_normal(size=h.shape, dtype=np.float32)
        out[start:start + FEATURE_CHUNK] = signal_scale * h + noise_scale * noise
    out.flush()
    del out


def generate(preset: str, seed: int = 0, out: str | Path | None = None, *, overwrite: bool = False,
             image_dim: int = 4096, text_dim: int = 384, informativeness: dict[str, float] | None = None,
             sharpness: float = 2.0, noise_add: float = 0.0) -> Path:
    """Write preset ``preset`` as an MMRec folder at ``out`` and return it.

    informativeness: modality -> share of signal variance in (0, 1]
        (default image 0.3, text 0.6). sharpness: how strongly affinity
        (vs popularity) drives interactions. noise_add: plant that fraction
        of added interactions (``data.noise``) with ground truth.
    """
    if preset not in PRESETS:
        raise DataError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    if out is None:
        raise DataError("generate needs an output folder")
    spec = PRESETS[preset]
    informativeness = {"image": 0.3, "text": 0.6, **(informativeness or {})}
    dims = {"image": image_dim, "text": text_dim}
    rng = np.random.default_rng([seed, 7])
    centres = rng.normal(size=(spec.clusters, LATENT_DIM)).astype(np.float32)
    item_cluster = rng.integers(0, spec.clusters, spec.items)
    user_cluster = rng.integers(0, spec.clusters, spec.users)
    scale = np.float32(1 / np.sqrt(LATENT_DIM))
    item_factors = (centres[item_cluster] + 0.5 * rng.normal(size=(spec.items, LATENT_DIM))).astype(np.float32) * scale
    user_factors = (centres[user_cluster] + 0.5 * rng.normal(size=(spec.users, LATENT_DIM))).astype(np.float32) * scale
    log_popularity = (np.log(rng.pareto(1.2, spec.items) + 1.0)).astype(np.float32)

    counts = _per_user_counts(rng, spec.users, spec.items, spec.interactions)
    items = _sample_items(rng, user_factors, item_factors, log_popularity, counts, sharpness * np.sqrt(LATENT_DIM),
                          user_cluster, item_cluster)
    items = _cover_all_items(rng, items, spec.items)
    users = np.repeat(np.arange(spec.users, dtype=np.int64), counts)
    times = np.sort(rng.integers(1_400_000_000, 1_600_000_000, users.size)).astype(np.float64)
    times = times[rng.permutation(times.size)]
    labels = split_labels(users, seed=seed)
    splits = [Interactions(users[labels == k], items[labels == k], times[labels == k]) for k in range(3)]

    out = Path(out)
    name = f"synth-{preset}"
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for modality, dim in dims.items():
            _stream_modality(rng, tmp / f"{modality}_feat.npy", item_factors, dim, informativeness[modality])
        features = {m: np.load(tmp / f"{m}_feat.npy", mmap_mode="r") for m in dims}
        dataset = Dataset(name, spec.users, spec.items, *splits, features=features)
        if noise_add > 0:
            from .noise import inject_noise
            dataset = inject_noise(dataset, add=noise_add, seed=seed)
        # features are already in place: write interactions + metadata, then move them in
        staged = write_mmrec(dataset.replace(features={}), tmp / "_staged", name=name)
        for f in staged.iterdir():
            f.replace(tmp / f.name)
        staged.rmdir()
        save_npz(tmp / "synth_truth.npz", user_cluster=user_cluster, item_cluster=item_cluster,
                 item_factors=item_factors, user_factors=user_factors, log_popularity=log_popularity)
        write_json(tmp / "synth.json", {"preset": preset, "seed": seed, "informativeness": informativeness,
                                        "sharpness": sharpness, "image_dim": image_dim, "text_dim": text_dim})
    return out
