"""Noise injection: exact counts, unseen pairs, untouched valid/test, nested levels, ground truth round trip."""
import json
import math

import numpy as np
import pytest

from mmdenoise.data import Dataset, Interactions, read_mmrec, write_mmrec
from mmdenoise.data.noise import inject_noise, write_noised
from mmdenoise.errors import DataError
from tests.planted import planted_dataset

N_ITEMS = 90


@pytest.fixture(scope="module")
def clean():
    return planted_dataset(n_users=150, n_items=N_ITEMS, per_user=12, seed=2)


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
    assert np.array_equal(flags, np.arange(len(noised.train)) >= len(clean.train))  # appended
    added = noised.train.keys(N_ITEMS)[flags]
    seen = np.concatenate([clean.split(s).keys(N_ITEMS) for s in ("train", "valid", "test")])
    assert np.unique(added).size == n_add and not np.isin(added, seen).any()
    assert np.array_equal(noised.train.take(~flags).keys(N_ITEMS), clean.train.keys(N_ITEMS))
    # an added pair's time lies in its user's training range
    t = noised.train.timestamps[flags]
    u = noised.train.users[flags]
    lo = np.array([clean.train.timestamps[clean.train.users == x].min() for x in u])
    hi = np.array([clean.train.timestamps[clean.train.users == x].max() for x in u])
    assert np.all((lo <= t) & (t <= hi))
    # valid and test rows are byte-identical in the file, arrays equal after reading
    assert _inter_rows(out, {"1", "2"}) == _inter_rows(src, {"1", "2"})
    for split in ("valid", "test"):
        a, b = noised.split(split), clean.split(split)
        assert np.array_equal(a.users, b.users) and np.array_equal(a.items, b.items)
        assert np.array_equal(a.timestamps, b.timestamps)
    spec = json.loads((out / "noise.json").read_text())
    assert spec["seed"] == 0 and spec["add"] == 0.1
    assert spec["source"]["fingerprint"] == clean.fingerprint and spec["counts"]["added"] == n_add


def test_valid_and_test_are_the_clean_objects(clean):
    noised = inject_noise(clean, add=0.2, remove=0.2, swap={"image": 0.2}, seed=3)
    assert noised.valid is clean.valid and noised.test is clean.test
    assert noised.features["text"] is clean.features["text"]  # an untouched modality is not copied


def test_remove_keeps_every_user_and_records_pairs(clean):
    noised = inject_noise(clean, remove=0.3, seed=1)
    n_rm = math.floor(0.3 * len(clean.train))
    assert len(noised.train) == len(clean.train) - n_rm and len(noised.noise.removed) == n_rm
    assert not noised.noise.noisy_interactions.any()
    assert np.array_equal(np.unique(noised.train.users), np.unique(clean.train.users))
    both = np.concatenate([noised.train.keys(N_ITEMS), noised.noise.removed.keys(N_ITEMS)])
    assert np.array_equal(np.sort(both), np.sort(clean.train.keys(N_ITEMS)))
    # the removed rows keep their timestamps
    order = np.argsort(clean.train.keys(N_ITEMS))
    where = order[np.searchsorted(clean.train.keys(N_ITEMS)[order], noised.noise.removed.keys(N_ITEMS))]
    assert np.array_equal(noised.noise.removed.timestamps, clean.train.timestamps[where])


def test_remove_everything_but_one_per_user(clean):
    n_users = np.unique(clean.train.users).size
    most = (len(clean.train) - n_users) / len(clean.train)
    noised = inject_noise(clean, remove=most, seed=0)
    assert np.unique(noised.train.users).size == n_users
    with pytest.raises(DataError, match="keep one per user"):
        inject_noise(clean, remove=1.0, seed=0)


def test_swap_and_misalign_flag_exactly_the_changed_rows(clean):
    noised = inject_noise(clean, swap={"image": 0.2, "text": 0.1}, misalign={"text": 0.1}, seed=0)
    for modality, n_flagged in (("image", math.floor(0.2 * N_ITEMS)), ("text", 2 * math.floor(0.1 * N_ITEMS))):
        flags = noised.noise.noisy_features[modality]
        assert flags.sum() == n_flagged
        changed = np.any(noised.features[modality] != clean.features[modality], axis=1)
        assert np.array_equal(changed, flags)
    # every swapped image row is another item's clean row
    flags = noised.noise.noisy_features["image"]
    clean_rows = {bytes(r): i for i, r in enumerate(clean.features["image"])}
    donors = [clean_rows[bytes(r)] for r in noised.features["image"][flags]]
    assert all(d != i for d, i in zip(donors, np.flatnonzero(flags)))


def test_misalign_is_a_derangement_of_the_chosen_rows(clean):
    noised = inject_noise(clean, misalign={"text": 0.3}, seed=5)
    flags = noised.noise.noisy_features["text"]
    assert flags.sum() == math.floor(0.3 * N_ITEMS)
    moved, original = noised.features["text"][flags], clean.features["text"][flags]
    assert sorted(map(bytes, moved)) == sorted(map(bytes, original))
    assert np.all(np.any(moved != original, axis=1))
    assert np.array_equal(noised.features["text"][~flags], clean.features["text"][~flags])


def test_duplicate_feature_rows_still_change(clean):
    """Items sharing a row (same image for two variants) never get 'swapped' for an identical row."""
    image = np.repeat(clean.features["image"][:3], N_ITEMS // 3, axis=0)  # only 3 distinct rows
    dup = clean.replace(features={"image": image})
    noised = inject_noise(dup, swap={"image": 0.5}, misalign={"image": 0.2}, seed=0)
    flags = noised.noise.noisy_features["image"]
    assert flags.sum() == 45 + 18
    assert np.array_equal(np.any(noised.features["image"] != image, axis=1), flags)


def test_levels_do_not_accumulate_and_are_nested(clean):
    once = inject_noise(clean, add=0.1, seed=0)
    with pytest.raises(DataError, match="already carries planted noise"):
        inject_noise(once, add=0.1, seed=0)
    low = inject_noise(clean, add=0.1, remove=0.1, swap={"image": 0.1}, seed=7)
    high = inject_noise(clean, add=0.2, remove=0.2, swap={"image": 0.2}, seed=7)
    n = len(clean.train)
    assert high.noise.noisy_interactions.sum() == math.floor(0.2 * n)  # of the clean train, not compounded
    assert len(high.noise.removed) == math.floor(0.2 * n)

    def added(ds):
        return set(ds.train.keys(N_ITEMS)[ds.noise.noisy_interactions].tolist())
    assert added(low) < added(high)
    assert set(low.noise.removed.keys(N_ITEMS).tolist()) < set(high.noise.removed.keys(N_ITEMS).tolist())
    low_items, high_items = (np.flatnonzero(d.noise.noisy_features["image"]) for d in (low, high))
    assert set(low_items) < set(high_items)
    # the same item got the same donor row at both levels
    assert np.array_equal(low.features["image"][low_items], high.features["image"][low_items])


def test_counts_use_the_ratio_as_written():
    """⌊0.58 · 50⌋ is 29, although 0.58 * 50 == 28.999999999999996 in binary floating point."""
    small = planted_dataset(n_users=40, n_items=50, per_user=4, seed=0)
    assert math.floor(0.58 * 50) == 28
    assert inject_noise(small, swap={"image": 0.58}, seed=0).noise.noisy_features["image"].sum() == 29


def test_bad_noise_options(clean):
    with pytest.raises(DataError, match="unknown modality 'audio'; modalities: image, text"):
        inject_noise(clean, swap={"audio": 0.1})
    with pytest.raises(DataError, match="unknown modality 'audio'; modalities: image, text"):
        inject_noise(clean, misalign={"audio": 0.1})
    with pytest.raises(DataError, match=r"unknown modality 'txt' \(did you mean 'text'\?\); modalities: image, text"):
        inject_noise(clean, swap={"txt": 0.1})
    with pytest.raises(DataError, match=r"add ratio must be a number in \[0, 1\]"):
        inject_noise(clean, add=1.5)
    with pytest.raises(DataError, match="ratio must be a number"):
        inject_noise(clean, swap={"image": float("nan")})
    with pytest.raises(DataError, match="at least 2"):
        inject_noise(clean, misalign={"image": 1.5 / N_ITEMS})
    with pytest.raises(DataError, match="ask for"):
        inject_noise(clean, swap={"image": 0.7}, misalign={"image": 0.7})


def test_dense_data_cannot_take_more_added_pairs():
    users = np.repeat(np.arange(4), 4)
    items = np.tile(np.arange(4), 4)
    labels = np.tile([0, 0, 1, 2], 4)
    splits = [Interactions(users[labels == k], items[labels == k]) for k in range(3)]
    full = Dataset("full", 4, 5, *splits)  # item 4 is the only unseen item of each user
    assert inject_noise(full, add=0.5, seed=0).noise.noisy_interactions.sum() == 4
    with pytest.raises(DataError, match="only 4 unseen"):
        inject_noise(full, add=0.75, seed=0)


def test_noise_truth_round_trip(clean, tmp_path):
    noised = inject_noise(clean, add=0.1, remove=0.1, swap={"image": 0.1}, misalign={"text": 0.1}, seed=4)
    back = read_mmrec(write_mmrec(noised, tmp_path / "n"))
    assert np.array_equal(back.noise.noisy_interactions, noised.noise.noisy_interactions)
    assert sorted(back.noise.noisy_features) == ["image", "text"]
    for m in ("image", "text"):
        assert np.array_equal(back.noise.noisy_features[m], noised.noise.noisy_features[m])
        assert np.array_equal(back.features[m], noised.features[m])
    for part in ("users", "items", "timestamps"):
        assert np.array_equal(getattr(back.noise.removed, part), getattr(noised.noise.removed, part))
    assert back.noise.spec == noised.noise.spec
    assert back.fingerprint == noised.fingerprint
