"""Synthetic sequential datasets with planted points of interest (for Demure).

The planted truth:

- every item has, independently per modality m, a cluster c^m_i in 0..C−1
  (balanced), and its modality-m feature is the cluster's random centre plus
  Gaussian noise: x^m_i = μ^m[c^m_i] + FEATURE_NOISE · ε, so a modality says
  which of its clusters an item is in and nothing about the other modalities;
- every user u has a **driving modality** m_u and an **interest cluster**
  k_u (both uniform); each position of the user's sequence is, independently
  with probability ``poi_rate``, a **point of interest**: an item drawn from
  {i : c^{m_u}_i = k_u} — or otherwise a noise item drawn uniformly from the
  other items; a user never repeats an item;
- so every next item that can be predicted at all is predicted by modality
  m_u of the points of interest in the history, and by nothing else.

Files: the MMRec layout (``<name>.inter`` with a per-user 8:1:1 ``x_label``
split for the general task and increasing timestamps for the sequential view,
one ``<modality>_feat.npy`` per modality), ``seq_truth.npz`` (``modalities``,
``driving_modality`` int64 [U] indexing it, ``interest_cluster`` int64 [U],
``item_cluster`` int64 [I, M], and the point-of-interest interactions as
``poi_user``/``poi_item`` int64 [P]) and ``synth.json`` (the options).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_dir, save_npz, write_json
from .dataset import Dataset
from .mmrec import write_mmrec
from .synth import check_generator_args

TRUTH_FILE = "seq_truth.npz"
FEATURE_NOISE = 0.5
TIME_START, TIME_STEP = 1_500_000_000, 3_600


@dataclass(frozen=True)
class SeqPreset:
    """Sizes of one planted sequential dataset."""

    users: int
    items: int
    min_length: int
    max_length: int
    clusters: int = 8
    poi_rate: float = 0.5
    modalities: tuple[str, ...] = ("image", "text", "tag")
    dims: tuple[int, ...] = (32, 24, 16)


SEQ_PRESETS: dict[str, SeqPreset] = {
    "seq-tiny": SeqPreset(300, 200, 15, 30),
    "seq-small": SeqPreset(3_000, 1_200, 20, 60, clusters=12),
}


def generate_sequential(preset: str, seed: int = 0, out: str | Path | None = None, *,
                        overwrite: bool = False) -> Path:
    """Write planted sequential preset ``preset`` as an MMRec folder at ``out`` (atomically).

    Same (preset, seed) → identical files. Vectorised: one users × items key
    matrix per draw (the presets are small), no loop over users.
    """
    check_generator_args(preset, SEQ_PRESETS, seed, out, "generate_sequential", "sequential preset")
    spec = SEQ_PRESETS[preset]
    rng = np.random.default_rng([seed, 9])
    n_mod = len(spec.modalities)
    item_cluster = np.stack([rng.permutation(spec.items) % spec.clusters for _ in range(n_mod)], axis=1)
    features = {}
    for m, (name, dim) in enumerate(zip(spec.modalities, spec.dims)):
        centres = rng.normal(size=(spec.clusters, dim))
        features[name] = (centres[item_cluster[:, m]] + FEATURE_NOISE * rng.normal(size=(spec.items, dim))
                          ).astype(np.float32)

    driving = rng.integers(0, n_mod, spec.users)
    interest = rng.integers(0, spec.clusters, spec.users)
    lengths = rng.integers(spec.min_length, spec.max_length + 1, spec.users)
    in_pool = item_cluster[:, driving].T == interest[:, None]                    # [U, I]
    pool_size, rest_size = in_pool.sum(1), (~in_pool).sum(1)
    n_poi = np.clip(rng.binomial(lengths, spec.poi_rate), 1, pool_size)
    n_noise = np.minimum(lengths - n_poi, rest_size)
    # without replacement: rank each user's pool (or non-pool) items by a random key, keep the first n
    keys = rng.random(in_pool.shape)
    poi_rank = np.argsort(np.argsort(np.where(in_pool, keys, 2.0), axis=1), axis=1)
    noise_rank = np.argsort(np.argsort(np.where(in_pool, 2.0, keys), axis=1), axis=1)
    is_poi = in_pool & (poi_rank < n_poi[:, None])
    chosen = is_poi | (~in_pool & (noise_rank < n_noise[:, None]))
    users, items = np.nonzero(chosen)
    poi = is_poi[users, items]
    # a random order within each user, then increasing timestamps
    order = np.lexsort((rng.random(users.size), users))
    users, items, poi = users[order], items[order], poi[order]
    counts = np.bincount(users, minlength=spec.users)
    rank = np.arange(users.size) - np.repeat(np.cumsum(counts) - counts, counts)
    times = (TIME_START + rank * TIME_STEP).astype(np.float64)

    name = f"synth-{preset}"
    dataset = Dataset.from_interactions(name, users, items, n_users=spec.users, n_items=spec.items, timestamps=times,
                                        features=features, seed=seed)
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        staged = write_mmrec(dataset, tmp / "_staged", name=name)
        for f in staged.iterdir():
            f.replace(tmp / f.name)
        staged.rmdir()
        save_npz(tmp / TRUTH_FILE, modalities=np.array(spec.modalities), driving_modality=driving.astype(np.int64),
                 interest_cluster=interest.astype(np.int64), item_cluster=item_cluster.astype(np.int64),
                 poi_user=users[poi].astype(np.int64), poi_item=items[poi].astype(np.int64))
        write_json(tmp / "synth.json", {"preset": preset, "seed": int(seed), "feature_noise": FEATURE_NOISE,
                                        **{k: list(v) if isinstance(v, tuple) else v
                                           for k, v in asdict(spec).items()}})
    return out


@dataclass(frozen=True)
class SeqTruth:
    """The planted truth of a sequential preset (see the module docstring)."""

    modalities: tuple[str, ...]
    driving_modality: np.ndarray
    interest_cluster: np.ndarray
    item_cluster: np.ndarray
    poi_user: np.ndarray
    poi_item: np.ndarray

    def poi_keys(self, n_items: int) -> np.ndarray:
        """Sorted ``user * n_items + item`` keys of the point-of-interest interactions (int64)."""
        return np.sort(self.poi_user * np.int64(n_items) + self.poi_item)


def read_seq_truth(folder: str | Path) -> SeqTruth | None:
    """The planted truth stored in ``folder`` (``seq_truth.npz``), or None when there is none."""
    path = Path(folder) / TRUTH_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("modalities", "driving_modality", "interest_cluster", "item_cluster",
                               "poi_user", "poi_item") if k not in z.files]
        if missing:
            raise DataError(f"missing arrays {missing}", path=path)
        return SeqTruth(tuple(str(m) for m in z["modalities"]), z["driving_modality"].astype(np.int64),
                        z["interest_cluster"].astype(np.int64), z["item_cluster"].astype(np.int64),
                        z["poi_user"].astype(np.int64), z["poi_item"].astype(np.int64))
