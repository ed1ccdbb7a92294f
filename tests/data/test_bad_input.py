"""Bad input: a DataError naming the file and the row or field, and nothing half-written."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest

import mmdenoise.data.mmrec as mmrec
from mmdenoise.data import Dataset, Interactions, read_mmrec, write_mmrec
from mmdenoise.data.tiktok import read_tiktok
from mmdenoise.errors import DataError, FeatureError
from tests.conftest import PickleTrap


# ------------------------------------------------------------------------ helpers
@pytest.fixture
def folder(make_dataset, tmp_path):
    """A valid MMRec folder written by mmdenoise (with mmdenoise.json)."""
    return write_mmrec(make_dataset(seed=1), tmp_path / "ds")


def inter_lines(folder) -> list[str]:
    """Lines of the .inter file; lines[0] is the header, lines[k] is row k."""
    return (folder / f"{folder.name}.inter").read_text().splitlines()


def set_inter_lines(folder, lines: list[str]) -> None:
    (folder / f"{folder.name}.inter").write_text("\n".join(lines) + "\n")


def set_field(folder, row: int, column: str, value: str) -> None:
    lines = inter_lines(folder)
    header = lines[0].split("\t")
    fields = lines[row].split("\t")
    fields[header.index(column)] = value
    lines[row] = "\t".join(fields)
    set_inter_lines(folder, lines)


def raises_naming(fn, *parts: str) -> DataError:
    """Call fn, expect a DataError whose message contains every one of ``parts``."""
    with pytest.raises(DataError) as info:
        fn()
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return info.value


# ------------------------------------------------------------------ .inter rows
def test_wrong_number_of_fields(folder):
    lines = inter_lines(folder)
    lines[5] = "1\t2"
    set_inter_lines(folder, lines)
    raises_naming(lambda: read_mmrec(folder), "ds.inter", "row 5", "expected 4 tab-separated fields, got 2")


def test_extra_field(folder):
    lines = inter_lines(folder)
    lines[9] += "\t7"
    set_inter_lines(folder, lines)
    raises_naming(lambda: read_mmrec(folder), "ds.inter", "row 9", "got 5")


@pytest.mark.parametrize("row, field, value, expected", [
    (3, "itemID", "abc", "'abc'"),                                   # not a number
    (4, "timestamp", "", "field timestamp"),                         # empty field
    (7, "userID", "-1", "non-negative integer, got -1"),             # negative id
    (2, "itemID", "2.5", "2.5"),                                     # non-integer id
    (11, "x_label", "3", "got 3"),                                   # x_label out of {0, 1, 2}
    (6, "timestamp", "nan", "not finite"),                           # non-finite timestamp
])
def test_bad_field_names_file_row_and_field(folder, row, field, value, expected):
    set_field(folder, row, field, value)
    raises_naming(lambda: read_mmrec(folder), "ds.inter", f"row {row}", f"field {field}", expected)


def test_row_numbers_count_blank_lines(folder):
    lines = inter_lines(folder)
    lines[3:3] = ["", ""]  # file rows 3 and 4 blank; the old row 8 is now row 10
    fields = lines[10].split("\t")
    fields[1] = "x"
    lines[10] = "\t".join(fields)
    set_inter_lines(folder, lines)
    raises_naming(lambda: read_mmrec(folder), "ds.inter", "row 10", "field itemID")


def test_not_utf8(folder):
    path = folder / "ds.inter"
    path.write_bytes(path.read_bytes() + b"1\t\xff\xfe\t0\t0\n")
    raises_naming(lambda: read_mmrec(folder), "ds.inter", "not UTF-8")


def test_header_lacks_column(folder):
    lines = inter_lines(folder)
    lines[0] = lines[0].replace("x_label", "split")
    set_inter_lines(folder, lines)
    raises_naming(lambda: read_mmrec(folder), "ds.inter", "row 0", "x_label")


# ------------------------------------------------------------------ ids out of range
def test_item_id_beyond_feature_rows(folder):
    os.remove(folder / "mmdenoise.json")  # a foreign folder: n_items comes from the features
    set_field(folder, 8, "itemID", "40")
    raises_naming(lambda: read_mmrec(folder), "ds.inter", "row 8", "field itemID", "out of range [0, 40)")


def test_user_id_beyond_meta(folder):
    set_field(folder, 12, "userID", "30")
    raises_naming(lambda: read_mmrec(folder), "ds.inter", "row 12", "field userID", "out of range [0, 30)")


def test_absurdly_sparse_ids(folder):
    os.remove(folder / "mmdenoise.json")
    set_field(folder, 4, "userID", "123456789012")
    raises_naming(lambda: read_mmrec(folder), "ds.inter", "row 4", "field userID", "dense")


# ------------------------------------------------------------------------ features
def test_feature_row_count_differs_from_n_items(folder):
    x = np.load(folder / "image_feat.npy")
    np.save(folder / "image_feat.npy", x[:-1])
    raises_naming(lambda: read_mmrec(folder), "image_feat.npy", "feature row count 39 != n_items 40")


def test_feature_row_counts_disagree_without_meta(folder):
    os.remove(folder / "mmdenoise.json")
    x = np.load(folder / "text_feat.npy")
    np.save(folder / "text_feat.npy", x[:-2])
    raises_naming(lambda: read_mmrec(folder), "image_feat.npy has 40", "text_feat.npy has 38",
                  "disagree on the number of items")


def test_feature_with_extra_rows_is_not_blamed_on_the_right_one(folder):
    """Without mmdenoise.json neither file can be blamed: the message names both (it named the good one)."""
    os.remove(folder / "mmdenoise.json")
    x = np.load(folder / "text_feat.npy")
    np.save(folder / "text_feat.npy", np.concatenate([x, x[:2]]))
    raises_naming(lambda: read_mmrec(folder), "image_feat.npy has 40", "text_feat.npy has 42")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_features(folder, value):
    x = np.load(folder / "image_feat.npy")
    x[7, 3] = value
    np.save(folder / "image_feat.npy", x)
    err = raises_naming(lambda: read_mmrec(folder), "image_feat.npy", "row 7", "NaN or inf")
    assert isinstance(err, FeatureError) and err.field == "image"


def test_zero_norm_feature_row(folder):
    x = np.load(folder / "text_feat.npy")
    x[4] = 0
    np.save(folder / "text_feat.npy", x)
    raises_naming(lambda: read_mmrec(folder), "text_feat.npy", "row 4", "all-zero")


def test_features_not_2d(folder):
    np.save(folder / "image_feat.npy", np.ones(40, dtype=np.float32))
    raises_naming(lambda: read_mmrec(folder), "image_feat.npy", "2-D")


def test_non_numeric_features(folder):
    np.save(folder / "image_feat.npy", np.full((40, 2), "a"))
    raises_naming(lambda: read_mmrec(folder), "image_feat.npy", "dtype")


# ------------------------------------------------------------- splits and users
def test_empty_split(folder):
    lines = inter_lines(folder)
    lines = [lines[0]] + [line[:-1] + "1" if line.endswith("\t2") else line for line in lines[1:]]
    set_inter_lines(folder, lines)
    raises_naming(lambda: read_mmrec(folder), "ds.inter", "field x_label", "no rows with x_label=2")


def test_user_without_training_data(folder):
    lines = inter_lines(folder)
    user = lines[1].split("\t")[0]
    rows = [k for k, line in enumerate(lines) if k and line.split("\t")[0] == user]
    for k in rows:  # move all of the user's training rows to valid
        if lines[k].endswith("\t0"):
            lines[k] = lines[k][:-1] + "1"
    set_inter_lines(folder, lines)
    raises_naming(lambda: read_mmrec(folder), "ds.inter", f"row {rows[0]}", "field userID",
                  f"user {user} has", "no training rows")


# ---------------------------------------------------------- no code from data
def test_pickled_npy_is_refused_unopened(folder, tmp_path):
    marker = tmp_path / "unpickled"
    np.save(folder / "image_feat.npy", np.array([PickleTrap(marker), 1], dtype=object), allow_pickle=True)
    raises_naming(lambda: read_mmrec(folder), "image_feat.npy", "cannot read feature array")
    assert not marker.exists()
    np.load(folder / "image_feat.npy", allow_pickle=True)  # control: the trap does fire when unpickled
    assert marker.exists()


def test_plain_pickle_named_npy_is_refused(folder, tmp_path):
    marker = tmp_path / "unpickled"
    (folder / "text_feat.npy").write_bytes(pickle.dumps(PickleTrap(marker)))
    raises_naming(lambda: read_mmrec(folder), "text_feat.npy")
    assert not marker.exists()


def test_truncated_npy(folder):
    path = folder / "image_feat.npy"
    path.write_bytes(path.read_bytes()[:200])
    raises_naming(lambda: read_mmrec(folder), "image_feat.npy", "cannot read feature array")


def test_noise_mask_with_object_array_refused(make_dataset, tmp_path):
    folder = write_mmrec(make_dataset(noise=True), tmp_path / "noisy")
    marker = tmp_path / "unpickled"
    with open(folder / "noise_mask.npz", "wb") as f:
        np.savez(f, interactions=np.array([PickleTrap(marker)], dtype=object))
    raises_naming(lambda: read_mmrec(folder), "noise_mask.npz")
    assert not marker.exists()


def test_noise_mask_length_mismatch(make_dataset, tmp_path):
    folder = write_mmrec(make_dataset(noise=True), tmp_path / "noisy")
    with np.load(folder / "noise_mask.npz") as z:
        arrays = dict(z)
    arrays["interactions"] = arrays["interactions"][:-1]
    np.savez(folder / "noise_mask.npz", **arrays)
    raises_naming(lambda: read_mmrec(folder), "noise_mask.npz", "field interactions")


def test_invalid_meta_json(folder):
    (folder / "mmdenoise.json").write_text('{"n_users": 30,')
    raises_naming(lambda: read_mmrec(folder), "mmdenoise.json", "invalid JSON at line 1")


def test_meta_wrong_type(folder):
    (folder / "mmdenoise.json").write_text('{"n_users": "30", "n_items": 40}')
    raises_naming(lambda: read_mmrec(folder), "mmdenoise.json", "field n_users")


# ------------------------------------------------------------------ tiktok json
def _mmssl(tmp_path, train, val, test, n_items=6):
    folder = tmp_path / "tiktok"
    folder.mkdir()
    for fname, obj in (("train.json", train), ("val.json", val), ("test.json", test)):
        (folder / fname).write_text(obj if isinstance(obj, str) else json.dumps(obj))
    np.save(folder / "image_feat.npy", np.random.default_rng(0).normal(size=(n_items, 4)).astype(np.float32))
    return folder


GOOD = ({"0": [0, 1, 2], "1": [3, 4]}, {"0": [3], "1": [5]}, {"0": [4], "1": [0]})


def test_tiktok_invalid_json(tmp_path):
    folder = _mmssl(tmp_path, GOOD[0], '{"0": [3], "1": [5]\n', GOOD[2])
    raises_naming(lambda: read_tiktok(folder), "val.json", "invalid JSON at line 2")


@pytest.mark.parametrize("key", ["a", "-1", "1.0", " 1", ""])
def test_tiktok_non_integer_user_key(tmp_path, key):
    folder = _mmssl(tmp_path, {"0": [0, 1], key: [2]}, *GOOD[1:])
    raises_naming(lambda: read_tiktok(folder), "train.json", f"user {key!r}", "user ids must be")


@pytest.mark.parametrize("item", ["3", 3.0, -1, True, None, [3]])
def test_tiktok_non_integer_item(tmp_path, item):
    folder = _mmssl(tmp_path, GOOD[0], GOOD[1], {"0": [4], "1": [0, item]})
    raises_naming(lambda: read_tiktok(folder), "test.json", "user '1', position 1")


def test_tiktok_item_beyond_features(tmp_path):
    folder = _mmssl(tmp_path, {"0": [0, 1, 2], "1": [3, 6]}, *GOOD[1:])
    raises_naming(lambda: read_tiktok(folder), "train.json", "user '1'", "item id 6 out of range [0, 6)")


def test_tiktok_not_an_object(tmp_path):
    folder = _mmssl(tmp_path, [[0, 1]], *GOOD[1:])
    raises_naming(lambda: read_tiktok(folder), "train.json", "expected a JSON object")


def test_tiktok_value_not_a_list(tmp_path):
    folder = _mmssl(tmp_path, {"0": [0, 1], "1": 3}, *GOOD[1:])
    raises_naming(lambda: read_tiktok(folder), "train.json", "user '1'", "list of item ids")


def test_tiktok_duplicate_user_key(tmp_path):
    folder = _mmssl(tmp_path, '{"0": [0, 1], "1": [2], "0": [3]}', *GOOD[1:])
    raises_naming(lambda: read_tiktok(folder), "train.json", "user '0'", "twice")


def test_tiktok_empty_split(tmp_path):
    folder = _mmssl(tmp_path, GOOD[0], {"0": [], "1": []}, GOOD[2])
    raises_naming(lambda: read_tiktok(folder), "val.json", "no interactions")


def test_tiktok_user_without_training_data(tmp_path):
    folder = _mmssl(tmp_path, {"0": [0, 1, 2], "1": []}, *GOOD[1:])
    raises_naming(lambda: read_tiktok(folder), "val.json", "user '1'", "no training items")


def test_tiktok_missing_split_file(tmp_path):
    folder = _mmssl(tmp_path, *GOOD)
    os.remove(folder / "test.json")
    raises_naming(lambda: read_tiktok(folder), "test.json", "missing")


def test_tiktok_bad_features_name_the_file(tmp_path):
    folder = _mmssl(tmp_path, *GOOD)
    x = np.load(folder / "image_feat.npy")
    x[2] = np.nan
    np.save(folder / "image_feat.npy", x)
    raises_naming(lambda: read_tiktok(folder), "image_feat.npy", "row 2", "NaN")


# ---------------------------------------------------------- in-memory wrong types
def test_float_ids_must_be_integral():
    with pytest.raises(DataError, match="field item: item ids must be integers, got 1.5"):
        Interactions(np.array([0, 1]), np.array([0.0, 1.5]))
    assert Interactions(np.array([0.0, 1.0]), np.array([2, 3])).users.dtype == np.int64
    with pytest.raises(DataError, match="dtype"):
        Interactions(np.array(["0"]), np.array([1]))


def test_dataset_refuses_non_finite_timestamps(make_dataset):
    ds = make_dataset()
    ts = ds.valid.timestamps.copy()
    ts[2] = np.inf
    with pytest.raises(DataError, match="row 2, field valid.timestamp"):
        ds.replace(valid=Interactions(ds.valid.users, ds.valid.items, ts))


def test_dataset_refuses_non_integer_sizes(make_dataset):
    ds = make_dataset()
    with pytest.raises(DataError, match="n_items must be an integer"):
        ds.replace(n_items=40.0)


# ------------------------------------------------------------- nothing half-written
def test_failed_write_leaves_nothing(make_dataset, tmp_path, monkeypatch):
    def fail(path, x, chunk_rows=4096):
        (path.parent / "partial.bin").write_bytes(b"x")  # something is already in the temp folder
        raise OSError("disk full")

    monkeypatch.setattr(mmrec, "_save_features", fail)
    out = tmp_path / "out"
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(OSError, match="disk full"):
        write_mmrec(make_dataset(), out)
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == before


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_existing_folder_is_not_overwritten(make_dataset, tmp_path):
    folder = write_mmrec(make_dataset(seed=1), tmp_path / "ds")
    before = _snapshot(folder)
    with pytest.raises(FileExistsError):
        write_mmrec(make_dataset(seed=2), folder)
    assert _snapshot(folder) == before
    assert sorted(os.listdir(tmp_path)) == ["ds"]


def test_failed_overwrite_keeps_old_folder(make_dataset, tmp_path, monkeypatch):
    folder = write_mmrec(make_dataset(seed=1), tmp_path / "ds")
    before = _snapshot(folder)

    def fail(path, x, chunk_rows=4096):
        raise OSError("disk full")

    monkeypatch.setattr(mmrec, "_save_features", fail)
    with pytest.raises(OSError):
        write_mmrec(make_dataset(seed=2), folder, overwrite=True)
    assert _snapshot(folder) == before
    assert sorted(os.listdir(tmp_path)) == ["ds"]


@pytest.mark.parametrize("name", ["../escape", "a/b", ".."])
def test_inter_name_cannot_leave_the_folder(make_dataset, tmp_path, name):
    with pytest.raises(DataError, match="file name"):
        write_mmrec(make_dataset(), tmp_path / "ds", name=name)
    assert sorted(os.listdir(tmp_path)) == []


def test_dataset_constructor_names_the_problem():
    # the Dataset's own checks (for builders that do not read files) still name split, row and field
    train = Interactions([0, 1], [0, 1])
    with pytest.raises(DataError, match="row 1, field test.user: user 2 has test interactions"):
        Dataset("x", 3, 2, train, Interactions([0], [1]), Interactions([1, 2], [0, 0]))


def test_tiktok_huge_numbers(tmp_path):
    folder = _mmssl(tmp_path, {"0": [0, 1], "1" * 30: [2]}, *GOOD[1:])
    raises_naming(lambda: read_tiktok(folder), "train.json", "user id too large")
    (folder / "train.json").write_text('{"0": [%s]}' % ("9" * 5000))
    raises_naming(lambda: read_tiktok(folder), "train.json", "cannot parse JSON")
    (folder / "train.json").write_text('{"0": [99999999999999999999999]}')
    raises_naming(lambda: read_tiktok(folder), "train.json", "user '0', position 0", "too large")


# --------------------------------------- repeated pairs: warned about and dropped (issue 23, class 7)
def _with_rows(folder, *extra: str) -> None:
    set_inter_lines(folder, inter_lines(folder) + list(extra))


def _row(folder, k: int) -> dict:
    lines = inter_lines(folder)
    return dict(zip(lines[0].split("\t"), lines[k].split("\t")))


def _as_line(folder, fields: dict) -> str:
    return "\t".join(fields[c] for c in inter_lines(folder)[0].split("\t"))


def test_clean_data_loads_without_a_warning(folder, caplog):
    read_mmrec(folder)
    assert not caplog.records


def test_repeated_training_row_is_dropped_with_a_warning(folder, caplog):
    clean = read_mmrec(folder)
    k = next(k for k in range(1, 50) if _row(folder, k)["x_label"] == "0")
    _with_rows(folder, inter_lines(folder)[k])
    n_rows = len(inter_lines(folder)) - 1
    ds = read_mmrec(folder)
    assert len(ds.train) == len(clean.train) and ds.fingerprint == clean.fingerprint
    (message,) = [r.getMessage() for r in caplog.records]
    assert "ds.inter: 1 repeated (user, item) row(s) dropped, 0 of them a pair already in an earlier split" in message
    assert f"row {n_rows}" in message


def test_test_pair_seen_in_training_is_dropped_from_test(folder, caplog):
    clean = read_mmrec(folder)
    k = next(k for k in range(1, 50) if _row(folder, k)["x_label"] == "0")
    fields = {**_row(folder, k), "x_label": "2"}
    _with_rows(folder, _as_line(folder, fields))
    ds = read_mmrec(folder)
    assert len(ds.test) == len(clean.test) and len(ds.train) == len(clean.train)
    assert "1 of them a pair already in an earlier split" in caplog.records[0].getMessage()


def test_pair_in_valid_and_test_is_kept_in_valid(folder, caplog):
    clean = read_mmrec(folder)
    k = next(k for k in range(1, len(inter_lines(folder))) if _row(folder, k)["x_label"] == "1")
    _with_rows(folder, _as_line(folder, {**_row(folder, k), "x_label": "2"}),
               _as_line(folder, {**_row(folder, k), "x_label": "2"}))
    ds = read_mmrec(folder)
    assert len(ds.valid) == len(clean.valid) and len(ds.test) == len(clean.test)
    assert "2 repeated (user, item) row(s) dropped, 2 of them" in caplog.records[0].getMessage()


# ------------------------------------------ messages that point at the real problem (issue 23, class 9)
def _load(folder):
    from mmdenoise.data import load_dataset
    return load_dataset(folder)


def test_missing_x_label_is_named_not_a_recbole_header(folder):
    lines = inter_lines(folder)
    lines[0] = lines[0].replace("\tx_label", "\tsplit")
    set_inter_lines(folder, lines)
    error = raises_naming(lambda: _load(folder), "ds.inter", "row 0", "lacks column(s) ['x_label']")
    assert "token" not in str(error)


def test_empty_inter_file_says_empty(folder):
    (folder / "ds.inter").write_text("")
    error = raises_naming(lambda: _load(folder), "ds.inter", "empty file")
    assert "token" not in str(error)


def test_comma_separated_inter_file_says_tabs(folder):
    set_inter_lines(folder, [line.replace("\t", ",") for line in inter_lines(folder)])
    error = raises_naming(lambda: _load(folder), "ds.inter", "comma-separated; fields must be separated by tabs")
    assert "token" not in str(error)


def test_recbole_folders_are_still_recbole(tmp_path):
    folder = tmp_path / "rb"
    folder.mkdir()
    (folder / "rb.inter").write_text("user_id:token\titem_id:token\n" + "".join(
        f"u{u}\ti{i}\n" for u in range(12) for i in range(u % 4, u % 4 + 6)))
    assert _load(folder).n_users == 12


def test_csv_saved_as_npy_is_not_called_a_pickle(folder):
    (folder / "image_feat.npy").write_text("0.1,0.2\n0.3,0.4\n")
    error = raises_naming(lambda: read_mmrec(folder), "image_feat.npy", "not a .npy array")
    assert "pickle" not in str(error) and "allow_pickle" not in str(error)


def test_pickle_saved_as_npy_is_named_and_no_unsafe_advice(folder, tmp_path):
    marker = tmp_path / "unpickled"
    (folder / "text_feat.npy").write_bytes(pickle.dumps(PickleTrap(marker)))
    error = raises_naming(lambda: read_mmrec(folder), "text_feat.npy", "a Python pickle (refused unopened")
    assert "allow_pickle" not in str(error) and not marker.exists()


def test_object_npy_gives_no_unsafe_advice(folder, tmp_path):
    np.save(folder / "image_feat.npy", np.array([PickleTrap(tmp_path / "m"), 1], dtype=object), allow_pickle=True)
    error = raises_naming(lambda: read_mmrec(folder), "image_feat.npy", "an array of Python objects")
    assert "allow_pickle" not in str(error)


def test_empty_npy_says_empty(folder):
    (folder / "image_feat.npy").write_bytes(b"")
    raises_naming(lambda: read_mmrec(folder), "image_feat.npy", "the file is empty")
