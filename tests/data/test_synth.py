"""Synthetic presets: the papers' shapes, planted structure, determinism."""
import numpy as np
import pytest

from mmdenoise.data import read_mmrec
from mmdenoise.data.synth import PRESETS, generate


@pytest.mark.parametrize("preset", list(PRESETS))
def test_preset_shapes_within_two_percent(preset, tmp_path):
    small_dims = {} if preset == "tiny" else {"image_dim": 8, "text_dim": 8}
    ds = read_mmrec(generate(preset, seed=0, out=tmp_path / preset, **small_dims))
    row = PRESETS[preset]
    total = len(ds.train) + len(ds.valid) + len(ds.test)
    assert ds.n_users == row.users and ds.n_items == row.items
    assert abs(total - row.interactions) <= 0.02 * row.interactions
    assert np.bincount(np.concatenate([ds.train.items, ds.valid.items, ds.test.items]),
                       minlength=ds.n_items).min() >= 1
    counts = np.bincount(np.concatenate([ds.train.users, ds.valid.users, ds.test.users]))
    assert counts.min() >= 5 and counts.max() > 4 * np.median(counts)  # long tail
    if preset == "tiny":
        assert ds.features["image"].shape == (200, 4096) and ds.features["text"].shape == (200, 384)


def _cluster_agreement(x, clusters):
    """Mean cosine within clusters minus mean cosine across clusters."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    same = clusters[:, None] == clusters[None, :]
    np.fill_diagonal(same, False)
    other = clusters[:, None] != clusters[None, :]
    return sims[same].mean() - sims[other].mean()


def test_planted_structure_and_informativeness(tmp_path):
    folder = generate("tiny", seed=1, out=tmp_path / "t")
    ds = read_mmrec(folder)
    truth = np.load(folder / "synth_truth.npz")
    items, users = truth["item_cluster"], truth["user_cluster"]
    text, image = (_cluster_agreement(np.asarray(ds.features[m]), items) for m in ("text", "image"))
    assert text > image > 0.02
    # interactions concentrate in the user's own cluster far above chance (1 / 4 clusters)
    in_cluster = np.mean(users[ds.train.users] == items[ds.train.items])
    assert in_cluster > 0.5


def test_deterministic_under_seed(tmp_path):
    a = read_mmrec(generate("tiny", seed=3, out=tmp_path / "a"))
    b = read_mmrec(generate("tiny", seed=3, out=tmp_path / "b"))
    c = read_mmrec(generate("tiny", seed=4, out=tmp_path / "c"))
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_planted_noise_option(tmp_path):
    ds = read_mmrec(generate("tiny", seed=0, out=tmp_path / "n", noise_add=0.1))
    clean = len(ds.train) - ds.noise.spec["counts"]["added"]
    assert ds.noise.noisy_interactions.sum() == ds.noise.spec["counts"]["added"] == int(0.1 * clean)
