"""The MMSSL json layout (TikTok): reading, LATTICE's 5-core/ variant, dispatch, no pickles opened."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from mmdenoise.data import read_mmrec, write_mmrec
from mmdenoise.errors import DataError
from mmdenoise.data.dataset import SPLITS
from mmdenoise.data.registry import read_folder
from mmdenoise.data.tiktok import is_tiktok_folder, read_tiktok
from tests.conftest import PickleTrap

FILES = {"train": "train.json", "valid": "val.json", "test": "test.json"}


def write_mmssl(dataset, folder, *, json_dir=None, all_users_in_test=False):
    """Write ``dataset`` as MMSSL would: json per split (user key -> item list) + *_feat.npy."""
    folder.mkdir()
    json_dir = folder if json_dir is None else folder / json_dir
    json_dir.mkdir(exist_ok=True)
    for split, fname in FILES.items():
        inter = dataset.split(split)
        obj = {}
        if all_users_in_test and split == "test":
            obj = {str(u): [] for u in range(dataset.n_users)}
        for u, i in zip(inter.users.tolist(), inter.items.tolist()):
            obj.setdefault(str(u), []).append(i)
        (json_dir / fname).write_text(json.dumps(obj))
    for m, x in dataset.features.items():
        np.save(folder / f"{m}_feat.npy", x)
    return folder


def pairs(inter):
    """Sorted (user, item) pairs: MMSSL groups by user, so order within a split is by key."""
    return sorted(zip(inter.users.tolist(), inter.items.tolist()))


def assert_same_content(ds, back):
    assert (back.n_users, back.n_items) == (ds.n_users, ds.n_items)
    for split in SPLITS:
        assert pairs(back.split(split)) == pairs(ds.split(split))
        assert back.split(split).timestamps is None
    assert list(back.features) == sorted(ds.features)
    for m, x in ds.features.items():
        assert back.features[m].tobytes() == x.tobytes()


def test_reads_mmssl_folder(make_dataset, tmp_path):
    ds = make_dataset(modalities={"image": 8, "text": 6, "audio": 4}, seed=3)
    folder = write_mmssl(ds, tmp_path / "tiktok", all_users_in_test=True)
    back = read_tiktok(folder)
    assert back.name == "tiktok" and back.path == folder
    assert back.modalities == ["audio", "image", "text"]
    assert_same_content(ds, back)


def json_splits(folder, train, valid, test):
    """An MMSSL folder without features whose three json files hold the given texts."""
    folder.mkdir()
    for fname, text in zip(FILES.values(), (train, valid, test)):
        (folder / fname).write_text(text)
    return folder


def test_file_order_is_kept(tmp_path):
    folder = json_splits(tmp_path / "t", '{"2": [5, 1, 3], "0": [4, 0], "1": [2]}', '{"1": [3], "0": [], "2": [0]}',
                         '{"0": [1], "1": [4], "2": [2]}')
    ds = read_tiktok(folder)
    np.testing.assert_array_equal(ds.train.users, [2, 2, 2, 0, 0, 1])
    np.testing.assert_array_equal(ds.train.items, [5, 1, 3, 4, 0, 2])
    np.testing.assert_array_equal(ds.valid.users, [1, 2])
    assert (ds.n_users, ds.n_items) == (3, 6)  # no features: max item id + 1
    assert ds.features == {}


def test_a_repeated_pair_counts_once_in_its_first_split_with_a_warning(tmp_path, caplog):
    """As in the MMRec reader: twice in a user's train list, or in train and again in test, is one
    training interaction; in valid and test it stays in valid. One warning names the first repeat."""
    folder = json_splits(tmp_path / "t", '{"0": [4, 0, 4], "1": [2, 1], "2": [5]}', '{"0": [1], "1": [3], "2": [0]}',
                         '{"0": [1, 3], "1": [2], "2": [3]}')
    with caplog.at_level("WARNING", logger="mmdenoise"):
        ds = read_tiktok(folder)
    assert pairs(ds.train) == [(0, 0), (0, 4), (1, 1), (1, 2), (2, 5)]
    assert pairs(ds.valid) == [(0, 1), (1, 3), (2, 0)] and pairs(ds.test) == [(0, 3), (2, 3)]
    np.testing.assert_array_equal(ds.train.items, [4, 0, 2, 1, 5])  # file order kept
    (message,) = [r.getMessage() for r in caplog.records]
    assert ("3 repeated (user, item) row(s) dropped, 2 of them a pair already in an earlier split "
            "(first: train.json user '0', position 2, user 0, item 4)") in message


def test_a_split_whose_every_pair_repeats_an_earlier_one_is_refused_saying_so(tmp_path):
    folder = json_splits(tmp_path / "t", '{"0": [4, 0], "1": [2, 1]}', '{"0": [4], "1": [2]}', '{"0": [1], "1": [3]}')
    with pytest.raises(DataError, match=r"every interaction of the valid split repeats a \(user, item\) pair of "
                                        r"an earlier split"):
        read_tiktok(folder)


def test_lattice_layout(make_dataset, tmp_path):
    ds = make_dataset(seed=5)
    folder = write_mmssl(ds, tmp_path / "baby", json_dir="5-core")
    assert is_tiktok_folder(folder)
    assert_same_content(ds, read_tiktok(folder))


def test_registry_dispatch(make_dataset, tmp_path):
    ds = make_dataset(seed=6)
    folder = write_mmssl(ds, tmp_path / "tiktok")
    assert_same_content(ds, read_folder(folder))


def test_mmssl_pickles_are_never_opened(make_dataset, tmp_path):
    ds = make_dataset(seed=7)
    folder = write_mmssl(ds, tmp_path / "tiktok")
    marker = tmp_path / "unpickled"
    for name in ("train_mat", "val_mat", "test_mat"):
        (folder / name).write_bytes(pickle.dumps(PickleTrap(marker)))
    read_tiktok(folder)
    assert not marker.exists()


def test_items_beyond_max_id_come_from_features(make_dataset, tmp_path):
    ds = make_dataset(seed=8)
    ds = ds.replace(n_items=ds.n_items + 3,
                    features={m: np.vstack([x, np.ones((3, x.shape[1]), np.float32)])
                              for m, x in ds.features.items()})
    back = read_tiktok(write_mmssl(ds, tmp_path / "tiktok"))
    assert back.n_items == ds.n_items


def test_export_to_mmrec_round_trips(make_dataset, tmp_path):
    back = read_tiktok(write_mmssl(make_dataset(seed=9), tmp_path / "tiktok"))
    again = read_mmrec(write_mmrec(back, tmp_path / "export"))
    for split in SPLITS:
        np.testing.assert_array_equal(again.split(split).users, back.split(split).users)
        np.testing.assert_array_equal(again.split(split).items, back.split(split).items)
    assert again.fingerprint == back.fingerprint


def test_not_a_tiktok_folder(tmp_path):
    from mmdenoise.errors import DataError

    assert not is_tiktok_folder(tmp_path)
    with pytest.raises(DataError, match="no train.json"):
        read_tiktok(tmp_path)
