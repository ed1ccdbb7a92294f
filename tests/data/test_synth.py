"""Synthetic presets: the papers' shapes, planted structure, informativeness, streaming, determinism."""
import tracemalloc

import numpy as np
import pytest

from mmdenoise.data import read_mmrec
from mmdenoise.data import synth
from mmdenoise.data.synth import PRESETS, Preset, generate
from mmdenoise.errors import DataError

SMALL_DIMS = {"image_dim": 4, "text_dim": 4}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """synth-tiny at full feature sizes (4,096-d image, 384-d text)."""
    return generate("tiny", seed=1, out=tmp_path_factory.mktemp("synth") / "tiny")


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_shapes_within_two_percent(preset, tmp_path, tiny):
    folder = tiny if preset == "tiny" else generate(preset, seed=0, out=tmp_path / preset, **SMALL_DIMS)
    ds = read_mmrec(folder)
    row = PRESETS[preset]
    users = np.concatenate([ds.train.users, ds.valid.users, ds.test.users])
    items = np.concatenate([ds.train.items, ds.valid.items, ds.test.items])
    assert ds.n_users == row.users and ds.n_items == row.items
    assert abs(users.size - row.interactions) <= 0.02 * row.interactions
    assert np.bincount(items, minlength=ds.n_items).min() >= 1  # n_items is exact
    counts = np.bincount(users, minlength=ds.n_users)
    assert counts.min() >= 5 and counts.max() > 4 * np.median(counts)  # long tail
    assert np.unique(users * ds.n_items + items).size == users.size  # sampled without replacement
    degree = np.bincount(items, minlength=ds.n_items)
    assert degree.max() > 5 * np.median(degree)  # popularity skew
    assert ds.name == f"synth-{preset}"
    if preset == "tiny":
        assert ds.features["image"].shape == (row.items, 4096) and ds.features["text"].shape == (row.items, 384)
        assert all(x.dtype == np.float32 for x in ds.features.values())


def _knn(x, k):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :k], sims


def test_planted_structure_and_informativeness(tiny):
    ds = read_mmrec(tiny)
    truth = np.load(tiny / "synth_truth.npz")
    item_cluster, user_cluster = truth["item_cluster"], truth["user_cluster"]
    latent_nn, _ = _knn(truth["item_factors"], 10)
    agreement = {}
    for m in ("image", "text"):
        nn, sims = _knn(np.asarray(ds.features[m], dtype=np.float64), 10)
        same = item_cluster[:, None] == item_cluster[None, :]
        np.fill_diagonal(same, False)
        gap = sims[same].mean() - sims[~same & np.isfinite(sims)].mean()
        overlap = np.mean((nn[:, :, None] == latent_nn[:, None, :]).any(axis=2))
        agreement[m] = (gap, overlap)
    # both modalities carry the clusters; text (w = 0.7) more than image (w = 0.35) at its 4,096 dims too
    assert agreement["text"][0] > agreement["image"][0] > 0.05
    assert agreement["text"][1] > agreement["image"][1] + 0.05
    # interactions follow the latent clusters far above chance (1 / 4 clusters) and popularity
    assert np.mean(user_cluster[ds.train.users] == item_cluster[ds.train.items]) > 0.5
    degree = np.bincount(ds.train.items, minlength=ds.n_items)
    assert np.corrcoef(truth["log_popularity"], np.log1p(degree))[0, 1] > 0.3


def test_informativeness_knob(tmp_path):
    """More informativeness, features closer to the latent factors (same dims, same seed)."""
    overlaps = []
    for w in (0.1, 0.5, 0.9):
        folder = generate("tiny", seed=0, out=tmp_path / f"w{w}", image_dim=64, text_dim=8,
                          informativeness={"image": w})
        truth_nn, _ = _knn(np.load(folder / "synth_truth.npz")["item_factors"], 10)
        nn, _ = _knn(np.load(folder / "image_feat.npy").astype(np.float64), 10)
        overlaps.append(np.mean((nn[:, :, None] == truth_nn[:, None, :]).any(axis=2)))
    assert overlaps[0] < overlaps[1] < overlaps[2]


def test_deterministic_under_seed_and_interactions_independent_of_dims(tmp_path, tiny):
    a = generate("tiny", seed=1, out=tmp_path / "a")
    small = generate("tiny", seed=1, out=tmp_path / "small", **SMALL_DIMS)
    other = generate("tiny", seed=2, out=tmp_path / "other")
    for f in ("synth-tiny.inter", "image_feat.npy", "text_feat.npy", "synth_truth.npz", "mmdenoise.json"):
        assert (a / f).read_bytes() == (tiny / f).read_bytes(), f
    assert (small / "synth-tiny.inter").read_bytes() == (a / "synth-tiny.inter").read_bytes()
    assert (other / "synth-tiny.inter").read_bytes() != (a / "synth-tiny.inter").read_bytes()


def test_planted_noise_option(tmp_path, tiny):
    clean = read_mmrec(tiny)
    noised = read_mmrec(generate("tiny", seed=1, out=tmp_path / "n", noise_add=0.1, **SMALL_DIMS))
    flags = noised.noise.noisy_interactions
    assert flags.sum() == noised.noise.spec["counts"]["added"] == int(0.1 * len(clean.train))
    assert np.array_equal(noised.train.take(~flags).keys(200), clean.train.keys(200))
    assert np.array_equal(noised.test.keys(200), clean.test.keys(200))


def test_features_are_streamed(tmp_path, monkeypatch):
    """Heap use does not grow with the feature matrix: it is written in row chunks, never held."""
    monkeypatch.setitem(PRESETS, "wide", Preset(1_000, 20_000, 25_000, clusters=5))
    monkeypatch.setattr(synth, "FEATURE_CHUNK", 1024)
    peaks = {}
    for dim in (16, 256):
        tracemalloc.start()
        try:
            generate("wide", seed=0, out=tmp_path / f"d{dim}", image_dim=dim, text_dim=4)
            peaks[dim] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    growth = 20_000 * (256 - 16) * 4  # 19 MB more float32 features
    assert peaks[256] - peaks[16] < growth / 4


def test_bad_options(tmp_path):
    with pytest.raises(DataError, match="unknown preset 'huge'; presets: tiny, baby"):
        generate("huge", out=tmp_path / "x")
    with pytest.raises(DataError, match="unknown modality 'audio'; modalities: image, text"):
        generate("tiny", out=tmp_path / "x", informativeness={"audio": 0.5})
    with pytest.raises(DataError, match="output folder"):
        generate("tiny")
    with pytest.raises(DataError, match="image_dim"):
        generate("tiny", out=tmp_path / "x", image_dim=0)
    assert not (tmp_path / "x").exists()
