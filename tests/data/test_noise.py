"""Noise injection: exact counts, unseen pairs, untouched valid/test, ground truth round trip."""
import math

import numpy as np
import pytest

from mmdenoise.data import read_mmrec, write_mmrec
from mmdenoise.data.noise import inject_noise, write_noised
from mmdenoise.errors import DataError
from tests.planted import planted_dataset


@pytest.fixture(scope="module")
def clean():
    return planted_dataset(n_users=150, n_items=90, per_user=12, seed=2)


def _inter_rows(folder, labels):
    lines = (folder / f"{folder.name}.inter").read_text().splitlines()[1:]
    return [line for line in lines if line.rsplit("\t", 1)[1] in labels]


def test_add_flags_exactly_floor_ratio_new_unseen_pairs(clean, tmp_path):
    src = write_mmrec(clean, tmp_path / "clean")
    out = write_noised(read_mmrec(src), tmp_path / "add10", add=0.1, seed=0)
    noised = read_mmrec(out)
    n_add = math.floor(0.1 * len(clean.train))
    flags = noised.noise.noisy_interactions
    assert flags.sum() == n_add and len(noised.train) == len(clean.train) + n_add
    added = noised.train.keys(clean.n_items)[flags]
    seen = np.concatenate([clean.split(s).keys(clean.n_items) for s in ("train", "valid", "test")])
    assert np.unique(added).size == n_add and not np.isin(added, seen).any()
    assert np.array_equal(noised.train.keys(clean.n_items)[~flags], clean.train.keys(clean.n_items))
    # valid and test rows are byte-identical
    assert _inter_rows(out, {"1", "2"}) == _inter_rows(src, {"1", "2"})
    for split in ("valid", "test"):
        assert np.array_equal(noised.split(split).keys(90), clean.split(split).keys(90))
        assert np.array_equal(noised.split(split).timestamps, clean.split(split).timestamps)


def test_remove_keeps_every_user_and_records_pairs(clean):
    noised = inject_noise(clean, remove=0.3, seed=1)
    n_rm = math.floor(0.3 * len(clean.train))
    assert len(noised.train) == len(clean.train) - n_rm and len(noised.noise.removed) == n_rm
    assert np.array_equal(np.unique(noised.train.users), np.unique(clean.train.users))
    both = np.concatenate([noised.train.keys(90), noised.noise.removed.keys(90)])
    assert np.array_equal(np.sort(both), np.sort(clean.train.keys(90)))


def test_swap_and_misalign_flag_exactly_the_changed_rows(clean):
    noised = inject_noise(clean, swap={"image": 0.2}, misalign={"text": 0.1}, seed=0)
    for modality, ratio in (("image", 0.2), ("text", 0.1)):
        flags = noised.noise.noisy_features[modality]
        assert flags.sum() == math.floor(ratio * 90)
        changed = np.any(noised.features[modality] != clean.features[modality], axis=1)
        assert np.array_equal(changed, flags)
    # misaligned rows are a permutation of the chosen items' own rows
    flags = noised.noise.noisy_features["text"]
    moved, original = noised.features["text"][flags], clean.features["text"][flags]
    assert sorted(map(bytes, moved)) == sorted(map(bytes, original))
    assert np.array_equal(noised.features["image"][~noised.noise.noisy_features["image"]],
                          clean.features["image"][~noised.noise.noisy_features["image"]])


def test_levels_do_not_accumulate(clean):
    once = inject_noise(clean, add=0.1, seed=0)
    with pytest.raises(DataError, match="already carries planted noise"):
        inject_noise(once, add=0.1, seed=0)
    twice = inject_noise(clean, add=0.2, seed=0)
    assert twice.noise.noisy_interactions.sum() == math.floor(0.2 * len(clean.train))


def test_bad_noise_options(clean):
    with pytest.raises(DataError, match="unknown modality 'audio'; modalities: image, text"):
        inject_noise(clean, swap={"audio": 0.1})
    with pytest.raises(DataError, match=r"add ratio must be in \[0, 1\)"):
        inject_noise(clean, add=1.5)


def test_noise_truth_round_trip(clean, tmp_path):
    noised = inject_noise(clean, add=0.1, remove=0.1, swap={"image": 0.1}, seed=4)
    back = read_mmrec(write_mmrec(noised, tmp_path / "n"))
    assert np.array_equal(back.noise.noisy_interactions, noised.noise.noisy_interactions)
    assert np.array_equal(back.noise.noisy_features["image"], noised.noise.noisy_features["image"])
    assert np.array_equal(back.noise.removed.keys(90), noised.noise.removed.keys(90))
    assert back.noise.spec["counts"] == noised.noise.spec["counts"]
    assert back.fingerprint == noised.fingerprint
