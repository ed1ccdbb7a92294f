"""dataset_info / format_info: hand-computed counts and sparsity, exact mean pairwise cosine."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mmdenoise.data import Dataset, Interactions, NoiseTruth
from mmdenoise.data.info import dataset_info, format_info, mean_pairwise_cosine


def brute_force_mean_cosine(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = xn @ xn.T
    n = len(x)
    return float((sim.sum() - np.trace(sim)) / (n * (n - 1)))


@pytest.mark.parametrize("shape,chunk", [((17, 5), 3), ((50, 2), None), ((2, 7), 1), ((64, 33), 64)])
def test_mean_cosine_matches_brute_force(shape, chunk):
    rng = np.random.default_rng(shape[0])
    x = (rng.normal(size=shape) + 0.3).astype(np.float32)
    assert mean_pairwise_cosine(x, chunk_rows=chunk) == pytest.approx(brute_force_mean_cosine(x), abs=1e-12)


def test_mean_cosine_known_values(tmp_path):
    assert mean_pairwise_cosine(np.ones((5, 3), np.float32)) == pytest.approx(1.0)
    assert mean_pairwise_cosine(np.eye(4, dtype=np.float32)) == pytest.approx(0.0, abs=1e-15)
    assert mean_pairwise_cosine(np.array([[1.0, 2.0], [-1.0, -2.0]], np.float32)) == pytest.approx(-1.0)
    assert np.isnan(mean_pairwise_cosine(np.ones((1, 3), np.float32)))
    # scale of a row does not matter
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(np.float32)
    y = x * np.arange(1, 10, dtype=np.float32)[:, None]
    assert mean_pairwise_cosine(x) == pytest.approx(mean_pairwise_cosine(y), abs=1e-6)


def test_mean_cosine_with_the_diagonal_and_given_unit_rows():
    """DA-MRS's S̄ (Eq. 1): the mean of all I² entries of X̂X̂ᵀ, of exactly the rows it is given."""
    x = np.random.default_rng(2).normal(size=(37, 5))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    full = float((unit @ unit.T).mean())
    assert mean_pairwise_cosine(x, include_self=True) == pytest.approx(full, abs=1e-14)
    chunked = mean_pairwise_cosine(unit, include_self=True, normalized=True, chunk_rows=6)
    assert chunked == pytest.approx(full, abs=1e-14)
    # given rows are not re-normalised (a row of norm 2 counts double), and zero rows count as cosine 0
    doubled = unit.copy()
    doubled[0] *= 2
    assert mean_pairwise_cosine(doubled, include_self=True, normalized=True) == pytest.approx(
        float((doubled @ doubled.T).mean()), abs=1e-14)
    with_zero = np.vstack([unit, np.zeros((1, 5))])
    sims = with_zero @ with_zero.T
    assert mean_pairwise_cosine(with_zero) == pytest.approx((sims.sum() - 37) / (38 * 37), abs=1e-14)
    assert mean_pairwise_cosine(with_zero, include_self=True) == pytest.approx(sims.mean(), abs=1e-14)
    hand = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [.8, .6]])
    assert mean_pairwise_cosine(hand, include_self=True) == pytest.approx(0.584, abs=1e-12)  # ‖(2.8, 2.6)‖² / 25
    assert mean_pairwise_cosine(np.ones((1, 3)), include_self=True) == pytest.approx(1.0)


def test_mean_cosine_on_memory_map(tmp_path):
    x = np.random.default_rng(1).normal(size=(31, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert mean_pairwise_cosine(mapped, chunk_rows=4) == pytest.approx(brute_force_mean_cosine(x), abs=1e-12)


def hand_dataset(noise: bool = False) -> Dataset:
    # 3 users x 5 items; 4 train + 3 valid + 2 test = 9 interactions -> sparsity 1 - 9/15 = 0.4
    train = Interactions([0, 0, 1, 2], [0, 1, 2, 3])
    valid = Interactions([0, 1, 2], [2, 3, 4])
    test = Interactions([1, 2], [0, 1])
    image = np.array([[1, 0], [0, 1], [1, 1], [1, -1], [2, 0]], np.float32)
    truth = None
    if noise:
        truth = NoiseTruth(np.array([True, False, False, True]),
                           {"image": np.array([False, True, False, False, False])},
                           Interactions([1], [4]), {"add": 0.5, "seed": 3})
    return Dataset("hand", 3, 5, train, valid, test, features={"image": image}, noise=truth)


def test_counts_and_sparsity():
    info = dataset_info(hand_dataset())
    assert info["users"] == 3 and info["items"] == 5
    assert info["interactions"] == {"train": 4, "valid": 3, "test": 2, "total": 9}
    assert info["sparsity"] == pytest.approx(1 - 9 / 15)
    assert info["modalities"]["image"]["dim"] == 2
    assert info["modalities"]["image"]["mean_cosine"] == pytest.approx(
        brute_force_mean_cosine(hand_dataset().features["image"]))
    assert info["noise"] is None
    json.dumps(info)  # plain Python types only


def test_noise_summary():
    info = dataset_info(hand_dataset(noise=True))
    assert info["noise"] == {
        "noisy_interactions": 2, "noisy_fraction": 0.5, "removed": 1,
        "noisy_items": {"image": 1}, "noisy_item_fraction": {"image": 0.2},
        "spec": {"add": 0.5, "seed": 3},
    }
    json.dumps(info)


def test_format_info_is_aligned(make_dataset):
    text = format_info(dataset_info(make_dataset(noise=True, modalities={"image": 16, "text": 384})))
    lines = text.splitlines()
    head = lines[:lines.index("")]
    value_columns = {len(line) - len(line.split("  ", 1)[1].lstrip()) for line in head}
    assert len(value_columns) == 1, text
    assert any(line.startswith("sparsity") and line.endswith("%") for line in head)
    table = lines[lines.index("") + 1:]
    table = table[:table.index("")]
    assert table[0].split()[:3] == ["modality", "dim", "mean"]
    assert [row.split()[0] for row in table[1:]] == ["image", "text"]
    dims = [row.index("16") + 2 if "16" in row else row.index("384") + 3 for row in table[1:]]
    assert len(set(dims)) == 1, "dim column right-aligned"
    assert "noisy interactions" in text and "spec" in text


def test_format_info_without_features_or_noise(make_dataset):
    text = format_info(dataset_info(make_dataset(modalities={})))
    assert "no item features" in text and "noise" not in text
