"""Synthetic datasets with the shapes of the papers' datasets and a planted truth.

The planted truth:

- users and items have ``LATENT_DIM``-d factors around a few cluster centres
  (``factor = (centre + SPREAD · ε) / √LATENT_DIM``); items have a heavy-tailed
  (Pareto) popularity;
- user u interacts with ``counts[u]`` distinct items (≥ 5, long-tailed,
  summing to the preset's total), drawn without replacement from
  p_u(i) ∝ popularity_i · exp(sharpness · u·v_i); every item gets at least one
  interaction, so ``n_items`` is exact;
- each modality m is its own random non-linear map of a mix of the item
  factors and an item-specific nuisance latent:
  ``x_i = tanh((√w_m · f_i + √(1−w_m) · z_i) A_m) B_m + FEATURE_NOISE · g_i``
  with f the standardised item factors, z, g standard Gaussian. The
  informativeness w_m is the share of the modality's latent input that
  carries the preference structure; because signal and nuisance share the
  same low-rank map, it means the same thing at 384 and at 4,096 dimensions
  (text 0.7, image 0.35 by default: image is the weaker modality).

Every stage draws from its own random stream (``_STREAMS``), so the
interactions do not depend on the feature sizes: a preset generated with
small feature dimensions has the same interactions as the full one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_dir, save_npz, write_json
from .dataset import Dataset
from .mmrec import write_mmrec
from .sampler import InverseCDF


@dataclass(frozen=True)
class Preset:
    """Sizes of one synthetic dataset (users, items and interactions as in the papers' Table 1)."""

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
MODALITIES = ("image", "text")
DEFAULT_INFORMATIVENESS = {"image": 0.35, "text": 0.7}
DEFAULT_SHARPNESS = 4.0
LATENT_DIM = 32
SPREAD = 0.8            # within-cluster spread of the factors (cluster centres have unit scale)
HIDDEN_DIM = 256        # width of each modality's non-linear map
FEATURE_NOISE = 0.2     # isotropic noise, relative to the unit-scale signal coordinates
MIN_PER_USER = 5
COUNT_SIGMA = 1.0       # log-normal spread of users' activity (the long tail)
OVERSAMPLE = 4          # candidates per wanted item in the importance-resampling step
UNIFORM_SHARE = 0.1     # share of the proposal spread uniformly over items (keeps every item reachable)
MAX_SAMPLING_ROUNDS = 6  # retry rounds, each doubling the candidates of users who fell short
USER_CHUNK = 16_384
FEATURE_CHUNK = 2_048
_TANH_RMS = 0.6278      # sqrt(E[tanh(g)^2]) for g ~ N(0, 1)
TIME_RANGE = (1_400_000_000, 1_600_000_000)
#: one random stream per stage, so changing one stage's sizes leaves the others' draws alone
_STREAMS = {"latent": 1, "counts": 2, "items": 3, "cover": 4, "time": 5, "image": 6, "text": 7}


def _rng(seed: int, stage: str) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS[stage]])


def _latents(rng: np.random.Generator, spec: Preset) -> dict[str, np.ndarray]:
    """Clusters, factors and popularity: the truth that ``synth_truth.npz`` stores.

    Returns user_cluster int64 [U], item_cluster int64 [I], user_factors and
    item_factors float32 [U|I, LATENT_DIM], log_popularity float32 [I].
    """
    centres = rng.normal(size=(spec.clusters, LATENT_DIM))
    user_cluster = rng.integers(0, spec.clusters, spec.users)
    item_cluster = rng.integers(0, spec.clusters, spec.items)
    scale = 1.0 / math.sqrt(LATENT_DIM)
    user_factors = (centres[user_cluster] + SPREAD * rng.normal(size=(spec.users, LATENT_DIM))) * scale
    item_factors = (centres[item_cluster] + SPREAD * rng.normal(size=(spec.items, LATENT_DIM))) * scale
    log_popularity = np.log1p(rng.pareto(1.2, spec.items))
    return {"user_cluster": user_cluster, "item_cluster": item_cluster,
            "user_factors": user_factors.astype(np.float32), "item_factors": item_factors.astype(np.float32),
            "log_popularity": log_popularity.astype(np.float32)}


def _per_user_counts(rng: np.random.Generator, n_users: int, total: int, cap: int) -> np.ndarray:
    """Long-tailed interaction counts, int64 [n_users], each in [MIN_PER_USER, cap], summing to ``total``.

    The counts above the minimum are a multinomial draw with log-normal user
    activity as weights; anything above ``cap`` is dealt again among users
    with room (a few rounds at most).
    """
    spare = total - MIN_PER_USER * n_users
    if spare < 0 or total > cap * n_users:
        raise DataError(f"{total} interactions cannot give {n_users} users between {MIN_PER_USER} "
                        f"and {cap} each")
    activity = rng.lognormal(0.0, COUNT_SIGMA, n_users)
    counts = MIN_PER_USER + rng.multinomial(spare, activity / activity.sum())
    while (over := np.maximum(counts - cap, 0).sum()) > 0:
        counts = np.minimum(counts, cap)
        room = activity * (counts < cap)
        counts += rng.multinomial(over, room / room.sum())
    return counts.astype(np.int64)


def _sample_items(rng: np.random.Generator, truth: dict[str, np.ndarray], counts: np.ndarray,
                  sharpness: float) -> np.ndarray:
    """Each user's items, int64 [counts.sum()] in user order, ~ p_u(i) ∝ pop_i·exp(sharpness·u·v_i).

    Sampling without replacement by importance resampling, so no
    users × items matrix is ever formed: a user draws OVERSAMPLE·counts[u] + 8
    candidates from its cluster's proposal q_c (the target at the cluster's
    mean user, mixed with a UNIFORM_SHARE of uniform mass), and keeps the
    ``counts[u]`` distinct candidates with the largest
    log p_u(i) − log q_c(i) + Gumbel keys (Gumbel top-k on importance
    weights). A user who drew fewer distinct candidates than asked (a heavy
    user in a small catalogue) is drawn again with twice the candidates.
    Loops run over user chunks and retry rounds only. ``counts`` is lowered
    in place only if a user still falls short after the last round.
    """
    users_f, items_f = truth["user_factors"], truth["item_factors"]
    user_cluster, log_pop = truth["user_cluster"], truth["log_popularity"].astype(np.float64)
    n_users, n_items = users_f.shape[0], items_f.shape[0]
    n_clusters = int(user_cluster.max()) + 1
    sizes = np.bincount(user_cluster, minlength=n_clusters)
    centre = np.zeros((n_clusters, LATENT_DIM))
    np.add.at(centre, user_cluster, users_f)
    centre /= np.maximum(sizes, 1)[:, None]
    logits = sharpness * centre @ items_f.T.astype(np.float64) + log_pop  # [C, I]
    q = np.exp(logits - logits.max(axis=1, keepdims=True))
    q = (1 - UNIFORM_SHARE) * q / q.sum(axis=1, keepdims=True) + UNIFORM_SHARE / n_items
    log_q = np.log(q)
    # every cluster's CDF shifted by its index: one sorted array serves all clusters
    cdf = np.cumsum(q, axis=1)
    cdf /= cdf[:, -1:]
    draw_stacked = InverseCDF((cdf + np.arange(n_clusters)[:, None]).ravel())

    def draw(users: np.ndarray, n_cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of the kept candidates, grouped by user; ``users`` sorted, < USER_CHUNK of them."""
        local = np.repeat(np.arange(users.size), n_cand)  # the candidate's user, as an index into users
        cluster = user_cluster[users[local]]
        pos = draw_stacked(cluster + rng.random(local.size))
        items = np.clip(pos - cluster * n_items, 0, n_items - 1)
        affinity = np.einsum("nd,nd->n", users_f[users[local]], items_f[items], dtype=np.float64)
        keys = sharpness * affinity + log_pop[items] - log_q[cluster, items] + rng.gumbel(size=items.size)
        # one entry per distinct (user, item): the pairs come in user runs, so a stable sort is quick
        pairs = local * np.int64(n_items) + items
        order = np.argsort(pairs, kind="stable")
        sorted_pairs = pairs[order]
        first = order[np.r_[True, sorted_pairs[1:] != sorted_pairs[:-1]]]
        local, items, keys = local[first], items[first], keys[first]
        # each user's candidates by decreasing key, in one float sort: with the keys scaled into
        # [0, 0.5], local + 0.5 − scaled orders by (user, −key) (resolution ~1e-11 of the key range)
        scaled = 0.5 * (keys - keys.min()) / max(np.ptp(keys), 1e-300)
        order = np.argsort(local + (0.5 - scaled))
        local, items = local[order], items[order]
        starts = np.searchsorted(local, np.arange(users.size))
        rank = np.arange(local.size) - starts[local]
        keep = rank < counts[users[local]]
        return users[local[keep]], items[keep]

    oversample = np.full(n_users, OVERSAMPLE)
    todo = np.arange(n_users)
    parts = []  # (users, items) per pass; a user's last pass wins
    for _ in range(MAX_SAMPLING_ROUNDS):
        n_cand = np.minimum(oversample[todo] * counts[todo] + 8, 64 * n_items)
        got = np.zeros(n_users, dtype=np.int64)
        for start in range(0, todo.size, USER_CHUNK):
            users, items = draw(todo[start:start + USER_CHUNK], n_cand[start:start + USER_CHUNK])
            parts.append((users, items))
            got += np.bincount(users, minlength=n_users)
        todo = todo[got[todo] < counts[todo]]
        if todo.size == 0:
            break
        oversample[todo] *= 2
    last_pass = np.zeros(n_users, dtype=np.int64)
    for k, (users, _) in enumerate(parts):
        last_pass[users] = k
    users = np.concatenate([u[last_pass[u] == k] for k, (u, _) in enumerate(parts)])
    items = np.concatenate([i[last_pass[u] == k] for k, (u, i) in enumerate(parts)])
    order = np.argsort(users, kind="stable")
    counts[:] = np.bincount(users, minlength=n_users)
    return items[order]


def _cover_all_items(rng: np.random.Generator, items: np.ndarray, n_items: int) -> np.ndarray:
    """Give every item ≥ 1 interaction: re-point random spare slots to the items nobody drew.

    A spare slot is an occurrence of an item that occurs elsewhere too, so no
    item loses its last interaction; a user never gets an item twice, since
    the re-pointed items were drawn by nobody. Returns a new int64 array.
    """
    missing = np.flatnonzero(np.bincount(items, minlength=n_items) == 0)
    if missing.size == 0:
        return items
    order = rng.permutation(items.size)
    by_item = order[np.argsort(items[order], kind="stable")]  # slots grouped by item, random within
    sorted_items = items[by_item]
    spare = by_item[np.r_[False, sorted_items[1:] == sorted_items[:-1]]]
    if spare.size < missing.size:
        raise DataError(f"{items.size} interactions cannot cover {n_items} items")
    items = items.copy()
    items[rng.choice(spare, missing.size, replace=False)] = missing
    return items


def _stream_modality(rng: np.random.Generator, path: Path, item_factors: np.ndarray, dim: int,
                     informativeness: float) -> np.ndarray:
    """Write one modality, float32 [n_items, dim], to ``path`` in row chunks; return it memory-mapped.

    x = tanh((√w·f + √(1−w)·z) A) B + FEATURE_NOISE·g, with f the item
    factors standardised to unit variance per coordinate, z a nuisance
    latent, A [LATENT_DIM, HIDDEN_DIM] and B [HIDDEN_DIM, dim] random maps
    scaled so the signal coordinates have about unit variance. Holds one
    chunk at a time, never the full matrix.
    """
    n_items = item_factors.shape[0]
    a = rng.standard_normal(size=(LATENT_DIM, HIDDEN_DIM), dtype=np.float32) / np.float32(math.sqrt(LATENT_DIM))
    b = rng.standard_normal(size=(HIDDEN_DIM, dim), dtype=np.float32)
    b /= np.float32(math.sqrt(HIDDEN_DIM) * _TANH_RMS)  # the hidden units are tanh of unit-variance inputs
    standardised = item_factors / item_factors.std()
    w = np.float32(informativeness)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_items, dim))
    for start in range(0, n_items, FEATURE_CHUNK):
        f = standardised[start:start + FEATURE_CHUNK]
        z = rng.standard_normal(size=f.shape, dtype=np.float32)
        block = np.tanh((np.sqrt(w) * f + np.sqrt(1 - w) * z) @ a) @ b
        block += FEATURE_NOISE * rng.standard_normal(size=block.shape, dtype=np.float32)
        out[start:start + FEATURE_CHUNK] = block
    out.flush()
    del out
    return np.load(path, mmap_mode="r", allow_pickle=False)


def check_generator_args(preset: str, presets: dict, seed, out, caller: str, what: str = "preset") -> None:
    """A DataError naming the field for an unknown ``what`` (preset), a missing ``out`` or a bad seed."""
    if preset not in presets:
        raise DataError(f"unknown {what} {preset!r}; presets: {', '.join(presets)}", field="preset")
    if out is None:
        raise DataError(f"{caller} needs an output folder (out=...)", field="out")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}", field="seed")


def _check_options(preset: str, seed: int, out, dims: dict[str, int], informativeness: dict[str, float],
                   sharpness: float) -> Preset:
    check_generator_args(preset, PRESETS, seed, out, "generate")
    for modality, dim in dims.items():
        if not isinstance(dim, (int, np.integer)) or dim < 1:
            raise DataError(f"{modality}_dim must be a positive integer, got {dim!r}", field=f"{modality}_dim")
    unknown = sorted(set(informativeness) - set(MODALITIES))
    if unknown:
        raise DataError(f"informativeness names unknown modality {unknown[0]!r}; modalities: "
                        f"{', '.join(MODALITIES)}", field="informativeness")
    for modality, w in informativeness.items():
        if not 0.0 <= w <= 1.0:
            raise DataError(f"informativeness of {modality} must be in [0, 1], got {w}", field="informativeness")
    if not (math.isfinite(sharpness) and sharpness >= 0):
        raise DataError(f"sharpness must be >= 0, got {sharpness}", field="sharpness")
    return PRESETS[preset]


def generate(preset: str, seed: int = 0, out: str | Path | None = None, *, overwrite: bool = False,
             image_dim: int = 4096, text_dim: int = 384, informativeness: dict[str, float] | None = None,
             sharpness: float = DEFAULT_SHARPNESS, noise_add: float = 0.0) -> Path:
    """Write preset ``preset`` as an MMRec folder at ``out`` (atomically) and return ``out``.

    The folder holds ``synth-<preset>.inter`` (per-user 8:1:1 split by
    ``split_labels(seed=seed)``), ``image_feat.npy`` [I, image_dim] and
    ``text_feat.npy`` [I, text_dim] (float32), ``mmdenoise.json``, the latent
    truth ``synth_truth.npz`` (user_cluster, item_cluster, user_factors,
    item_factors, log_popularity) and ``synth.json`` (the options).

    informativeness: modality -> w in [0, 1] (default image 0.35, text 0.7).
    sharpness: weight of the user·item affinity against popularity in the
        interaction softmax (0: popularity only).
    noise_add: plant that fraction of added interactions with ground truth
        (``data.noise.inject_noise(add=noise_add, seed=seed)``); the folder
        then also has noise.json + noise_mask.npz.
    Same (preset, seed, options) → byte-identical files.
    """
    dims = {"image": image_dim, "text": text_dim}
    informativeness = {**DEFAULT_INFORMATIVENESS, **(informativeness or {})}
    spec = _check_options(preset, seed, out, dims, informativeness, sharpness)
    truth = _latents(_rng(seed, "latent"), spec)
    counts = _per_user_counts(_rng(seed, "counts"), spec.users, spec.interactions, cap=max(spec.items // 4, 10))
    items = _sample_items(_rng(seed, "items"), truth, counts, sharpness)
    items = _cover_all_items(_rng(seed, "cover"), items, spec.items)
    users = np.repeat(np.arange(spec.users, dtype=np.int64), counts)
    times = _rng(seed, "time").integers(*TIME_RANGE, users.size).astype(np.float64)

    out = Path(out)
    name = f"synth-{preset}"
    with atomic_dir(out, overwrite=overwrite) as tmp:
        features = {m: _stream_modality(_rng(seed, m), tmp / f"{m}_feat.npy", truth["item_factors"],
                                        dims[m], informativeness[m]) for m in MODALITIES}
        dataset = Dataset.from_interactions(name, users, items, n_users=spec.users, n_items=spec.items,
                                            timestamps=times, features=features, seed=seed)
        if noise_add:  # inject_noise checks the ratio
            from .noise import inject_noise
            dataset = inject_noise(dataset, add=noise_add, seed=seed)
        # the features are already in place: write the rest beside them without copying them
        staged = write_mmrec(dataset.replace(features={}), tmp / "_staged", name=name)
        for f in staged.iterdir():
            f.replace(tmp / f.name)
        staged.rmdir()
        save_npz(tmp / "synth_truth.npz", **truth)
        write_json(tmp / "synth.json", {"preset": preset, "seed": int(seed), "image_dim": int(image_dim),
                                        "text_dim": int(text_dim), "informativeness": informativeness,
                                        "sharpness": sharpness, "noise_add": noise_add})
        del features, dataset  # release the memory maps before the folder is moved
    return out
