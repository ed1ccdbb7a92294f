"""The MMRec layout: exact round trips, foreign folders, memory-mapped features."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdenoise.data import Dataset, Interactions, read_mmrec, write_mmrec
from mmdenoise.data.dataset import SPLITS
from mmdenoise.data.mmrec import _save_features, is_mmrec_folder, read_table


def assert_same_dataset(a: Dataset, b: Dataset, *, check_name: bool = True) -> None:
    """Every array equal, in order and dtype; features bitwise; noise truth; fingerprint."""
    if check_name:
        assert a.name == b.name
    assert (a.n_users, a.n_items) == (b.n_users, b.n_items)
    for split in SPLITS:
        x, y = a.split(split), b.split(split)
        for field in ("users", "items"):
            u, v = getattr(x, field), getattr(y, field)
            assert u.dtype == v.dtype == np.int64
            np.testing.assert_array_equal(u, v, err_msg=f"{split}.{field}")
        if x.timestamps is None:
            assert y.timestamps is None
        else:
            assert y.timestamps.dtype == np.float64
            assert x.timestamps.tobytes() == y.timestamps.tobytes(), f"{split}.timestamps"
    assert list(a.features) == list(b.features)
    for m in a.features:
        assert b.features[m].dtype == np.float32 and b.features[m].shape == a.features[m].shape
        assert np.asarray(a.features[m]).tobytes() == np.asarray(b.features[m]).tobytes(), m
    assert (a.noise is None) == (b.noise is None)
    if a.noise is not None:
        np.testing.assert_array_equal(a.noise.noisy_interactions, b.noise.noisy_interactions)
        assert sorted(a.noise.noisy_features) == sorted(b.noise.noisy_features)
        for m, mask in a.noise.noisy_features.items():
            np.testing.assert_array_equal(mask, b.noise.noisy_features[m])
        np.testing.assert_array_equal(a.noise.removed.users, b.noise.removed.users)
        np.testing.assert_array_equal(a.noise.removed.items, b.noise.removed.items)
        assert dict(a.noise.spec) == dict(b.noise.spec)
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize("noise", [False, True])
def test_round_trip_is_exact(make_dataset, tmp_path, noise):
    ds = make_dataset(noise=noise, seed=4)
    ts = ds.train.timestamps
    assert np.any(ts != np.floor(ts)) and np.any(ts == np.floor(ts)), "fixture should mix both"
    folder = write_mmrec(ds, tmp_path / "ds")
    back = read_mmrec(folder)
    assert_same_dataset(ds, back)
    assert back.path == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["ds.inter", "image_feat.npy", "text_feat.npy", "mmdenoise.json"]
        + (["noise.json", "noise_mask.npz"] if noise else []))


def test_round_trip_keeps_unusual_timestamps(make_dataset, tmp_path):
    ds = make_dataset()
    ts = ds.train.timestamps.copy()
    ts[:8] = [0.1, 1e-7, 123456789.123456789, 2.0 ** 60, -5.5, 1e20, -0.0, 5e-324]
    ds = ds.replace(train=Interactions(ds.train.users, ds.train.items, ts))
    back = read_mmrec(write_mmrec(ds, tmp_path / "ds"))
    assert back.train.timestamps.tobytes() == ts.tobytes()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=20))
def test_round_trip_any_finite_timestamp(values):
    from tests.conftest import build_dataset

    ds = build_dataset(n_users=8, n_items=10, modalities={"image": 2})
    ts = ds.train.timestamps.copy()
    ts[:len(values)] = values[:len(ts)]
    ds = ds.replace(train=Interactions(ds.train.users, ds.train.items, ts))
    with tempfile.TemporaryDirectory() as tmp:
        back = read_mmrec(write_mmrec(ds, Path(tmp) / "ds"))
    assert back.train.timestamps.tobytes() == ts.tobytes()


def test_round_trip_without_timestamps_or_features(make_dataset, tmp_path):
    ds = make_dataset(timestamps=False, modalities={})
    back = read_mmrec(write_mmrec(ds, tmp_path / "plain"))
    assert_same_dataset(ds, back)
    header = (tmp_path / "plain" / "plain.inter").read_text().splitlines()[0]
    assert header == "userID\titemID\tx_label"


def test_meta_keeps_items_without_interactions(make_dataset, tmp_path):
    # items beyond the largest interacted id and no features: only mmdenoise.json knows n_items
    ds = make_dataset(modalities={})
    ds = ds.replace(n_items=ds.n_items + 5, n_users=ds.n_users + 2)
    back = read_mmrec(write_mmrec(ds, tmp_path / "wide"))
    assert (back.n_users, back.n_items) == (ds.n_users, ds.n_items)


def _write_foreign(folder, rows, features, header="userID\titemID\trating\ttimestamp\tx_label",
                   inter_name=None):
    folder.mkdir()
    lines = [header] + ["\t".join(str(v) for v in row) for row in rows]
    (folder / f"{inter_name or folder.name}.inter").write_text("\n".join(lines) + "\n")
    for m, x in features.items():
        np.save(folder / f"{m}_feat.npy", x)
    return folder


def test_foreign_folder_reads_by_prefix(tmp_path):
    rng = np.random.default_rng(1)
    rows = [  # user, item, rating, timestamp, x_label
        (0, 0, 5.0, 1000, 0), (0, 1, 4.0, 1001, 0), (0, 2, 3.0, 1002, 1), (0, 3, 1.0, 1003, 2),
        (1, 4, 5.0, 999, 0), (1, 0, 2.0, 998.5, 0), (1, 5, 5.0, 997, 2), (1, 6, 5.0, 996, 1),
        (2, 1, 5.0, 100, 0), (2, 2, 5.0, 101, 1), (2, 7, 5.0, 102, 2),
    ]
    feats = {"image": rng.normal(size=(10, 6)).astype(np.float32),
             "text": rng.normal(size=(10, 4)),  # float64 on disk: converted
             "audio": rng.normal(size=(10, 3)).astype(np.float32)}
    folder = _write_foreign(tmp_path / "baby", rows, feats)
    assert is_mmrec_folder(folder)
    ds = read_mmrec(folder)
    assert ds.name == "baby" and ds.noise is None
    assert ds.modalities == ["audio", "image", "text"]
    assert ds.n_users == 3 and ds.n_items == 10  # items from the feature rows, not max id + 1
    table = np.array(rows, dtype=np.float64)
    for label, split in enumerate(SPLITS):
        want = table[table[:, 4] == label]
        got = ds.split(split)
        np.testing.assert_array_equal(got.users, want[:, 0])
        np.testing.assert_array_equal(got.items, want[:, 1])
        np.testing.assert_array_equal(got.timestamps, want[:, 3])
    assert ds.features["image"].tobytes() == feats["image"].tobytes()
    np.testing.assert_array_equal(ds.features["text"], feats["text"].astype(np.float32))


def test_foreign_folder_other_inter_name_crlf_and_blank_lines(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    text = ("userID\titemID\tx_label\r\n0\t0\t0\r\n\r\n0\t1\t1\r\n0\t2\t2\r\n1\t1\t0\r\n"
            "1\t2\t1\r\n1\t0\t2\r\n\r\n")
    (folder / "data.inter").write_bytes(text.encode())
    ds = read_mmrec(folder)
    assert (ds.n_users, ds.n_items) == (2, 3)
    np.testing.assert_array_equal(ds.train.items, [0, 1])
    assert ds.train.timestamps is None


def test_read_table_row_numbers_skip_blank_lines(tmp_path):
    path = tmp_path / "t.inter"
    path.write_text("a\tb\n1\t2\n\n3\t4\n\n\n5\t6")
    table = read_table(path, ("a", "b"))
    np.testing.assert_array_equal(table.values, [[1, 2], [3, 4], [5, 6]])
    np.testing.assert_array_equal(table.rows, [1, 3, 6])


def test_mmap_features_survive_rewriting(make_dataset, tmp_path):
    ds = make_dataset(noise=True, seed=2)
    first = read_mmrec(write_mmrec(ds, tmp_path / "a"))
    assert all(isinstance(x, np.memmap) for x in first.features.values())
    # to a new folder, from the maps
    second = read_mmrec(write_mmrec(first, tmp_path / "b"))
    assert_same_dataset(ds, second)
    # over the very folder the maps point into
    write_mmrec(first, tmp_path / "a", overwrite=True)
    assert_same_dataset(ds, first)  # the old maps still read the old (identical) data
    assert_same_dataset(ds, read_mmrec(tmp_path / "a"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_chunked_feature_writer(tmp_path):
    x = np.random.default_rng(0).normal(size=(23, 5)).astype(np.float32)
    np.save(tmp_path / "src.npy", x)
    mapped = np.load(tmp_path / "src.npy", mmap_mode="r")
    _save_features(tmp_path / "dst.npy", mapped, chunk_rows=4)
    assert np.load(tmp_path / "dst.npy").tobytes() == x.tobytes()


def test_inter_name_and_meta(make_dataset, tmp_path):
    ds = make_dataset()
    folder = write_mmrec(ds, tmp_path / "out", name="baby")
    assert (folder / "baby.inter").exists()
    meta = json.loads((folder / "mmdenoise.json").read_text())
    assert meta == {"name": "small", "n_users": ds.n_users, "n_items": ds.n_items}
    assert read_mmrec(folder).name == "small"
    assert read_mmrec(folder, name="other").name == "other"
