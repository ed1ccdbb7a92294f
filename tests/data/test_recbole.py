"""RecBole atomic files: typed headers, token re-indexing, seeded split, features, clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from mmdenoise.data.recbole import parse_atomic, parse_columns, read_recbole, token_ids
from mmdenoise.data.registry import read_folder
from mmdenoise.errors import DataError

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float"


def _write(folder, rows, header=INTER_HEADER, item=None):
    folder.mkdir()
    (folder / f"{folder.name}.inter").write_text(header + "\n" + "".join(r + "\n" for r in rows), encoding="utf-8")
    if item is not None:
        (folder / f"{folder.name}.item").write_text("\n".join(item) + "\n", encoding="utf-8")
    return folder


def _toy_rows(n_users=12, per_user=12, n_items=30):
    # the timestamp encodes the user token: t // 1000 == u
    return [f"u{u}\ti{(u * 7 + k) % n_items}\t4\t{1000 * u + k}" for u in range(n_users) for k in range(per_user)]


def test_numeric_tokens_reindexed_in_numeric_order():
    ids, vocab = token_ids(np.array(["10", "9", "100", "9"]))
    assert ids.tolist() == [1, 0, 2, 0] and vocab.tolist() == ["9", "10", "100"]
    # a leading zero makes the field non-numeric: "007" and "7" must stay two tokens
    ids, vocab = token_ids(np.array([b"007", b"7", b"10"]))
    assert vocab.tolist() == ["007", "10", "7"] and ids.tolist() == [0, 2, 1]
    ids, vocab = token_ids(np.array(["b", "ä", "a", "b"]))
    assert vocab[ids].tolist() == ["b", "ä", "a", "b"] and vocab.tolist() == ["a", "b", "ä"]


def test_read_recbole_folder(tmp_path):
    ds = read_folder(_write(tmp_path / "toy", _toy_rows()))
    assert ds.n_users == 12 and ds.n_items == 30
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 144
    # 12 interactions per user: round(1.2) = 1 valid and 1 test each
    assert np.bincount(ds.test.users).tolist() == [1] * 12
    assert np.bincount(ds.valid.users).tolist() == [1] * 12
    # u10 and u11 sort after u1 and before u2 (token order is lexicographic for non-numeric ids)
    all_users = np.concatenate([ds.train.users, ds.valid.users, ds.test.users])
    all_times = np.concatenate([ds.train.timestamps, ds.valid.timestamps, ds.test.timestamps])
    assert set(all_times[all_users == 2].astype(int) // 1000) == {10}
    again = read_recbole(tmp_path / "toy", seed=0)
    assert again.fingerprint == ds.fingerprint
    assert read_recbole(tmp_path / "toy", seed=1).fingerprint != ds.fingerprint


def test_ids_do_not_depend_on_row_order(tmp_path):
    rows = _toy_rows()
    a = read_recbole(_write(tmp_path / "a", rows))
    b = read_recbole(_write(tmp_path / "b", rows[::-1]))

    def pairs(d):
        return sorted(zip(*(np.concatenate([d.split(s).users for s in ("train", "valid", "test")]),
                            np.concatenate([d.split(s).items for s in ("train", "valid", "test")]))))
    assert pairs(a) == pairs(b)


def test_repeated_pairs_keep_their_first_record(tmp_path):
    rows = _toy_rows() + ["u0\ti0\t1\t999999"]  # u0-i0 is already the first row
    ds = read_recbole(_write(tmp_path / "dup", rows))
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 144
    times = np.concatenate([ds.split(s).timestamps for s in ("train", "valid", "test")])
    assert 999999.0 not in times and 0.0 in times


def test_item_file_features(tmp_path):
    item = ["item_id:token\temb:float_seq\tgenre:token_seq\ttitle:token"]
    item += [f"i{k}\t{k + 1} {-k} 0.5\t{'a b' if k % 2 else 'c'}\tT{k}" for k in range(30)]
    item += ["ghost\t1 2 3\tz\tnot rated"]  # an item without interactions is ignored
    folder = _write(tmp_path / "feat", _toy_rows(), item=item)
    ds = read_recbole(folder)
    assert list(ds.features) == ["emb"]  # default: the float_seq fields
    # item ids are the sorted tokens i0, i1, i10, i11, ..., so look the row up by token order
    vocab = sorted(f"i{k}" for k in range(30))
    row = vocab.index("i10")
    np.testing.assert_array_equal(ds.features["emb"][row], [11, -10, 0.5])
    ds = read_recbole(folder, features=["genre"])
    assert ds.features["genre"].shape == (30, 3)  # tokens a, b, c (z belongs to the unrated item)
    np.testing.assert_array_equal(ds.features["genre"][vocab.index("i3")], [1, 1, 0])
    np.testing.assert_array_equal(ds.features["genre"][vocab.index("i4")], [0, 0, 1])


def test_item_file_errors(tmp_path):
    item = ["item_id:token\temb:float_seq"] + [f"i{k}\t1 2" for k in range(29)]
    with pytest.raises(DataError, match=r"missing\.item: field item_id: item 'i29' has interactions but no row"):
        read_recbole(_write(tmp_path / "missing", _toy_rows(), item=item))
    item = ["item_id:token\temb:float_seq"] + [f"i{k}\t1 2" for k in range(30)]
    item[5] = "i4\t1 2 3"
    with pytest.raises(DataError, match=r"feat2\.item: row 5, field emb: expected 2 space-separated numbers, got 3"):
        read_recbole(_write(tmp_path / "feat2", _toy_rows(), item=item))
    item[5] = "i4\t1 x"
    with pytest.raises(DataError, match=r"row 5, field emb: not a number: 'x'"):
        read_recbole(_write(tmp_path / "feat3", _toy_rows(), item=item))


def test_bad_rows_and_headers_name_the_place(tmp_path):
    folder = _write(tmp_path / "bad", ["1\t2\t3\t4", "1\t2\t3"])
    with pytest.raises(DataError, match=r"bad\.inter: row 2: expected 4 tab-separated fields, got 3"):
        read_recbole(folder)
    with pytest.raises(DataError, match="row 0: header field 'user_id' is not of the form"):
        parse_atomic("user_id\titem_id:token\n1\t2\n", "x.inter")
    with pytest.raises(DataError, match=r"row 0: header repeats field\(s\) \['a'\]"):
        parse_atomic("a:token\ta:float\n1\t2\n", "x.inter")
    folder = _write(tmp_path / "ts", ["1\t2\t3\t5", "", "1\t3\t3\tyesterday"])
    # the blank line still counts: the bad record is on line 4, row 3
    with pytest.raises(DataError, match=r"ts\.inter: row 3, field timestamp: not a number: 'yesterday'"):
        read_recbole(folder)
    folder = _write(tmp_path / "inf", ["1\t2\t3\t5", "1\t3\t3\tinf"])
    with pytest.raises(DataError, match=r"inf\.inter: row 2, field timestamp: timestamp inf is not finite"):
        read_recbole(folder)
    folder = _write(tmp_path / "empty_id", ["1\t2\t3\t5", "\t3\t3\t6"])
    with pytest.raises(DataError, match=r"row 2, field user_id: empty user id"):
        read_recbole(folder)
    folder = _write(tmp_path / "typed", ["1\t2\t3\t5"], header="user_id:float\titem_id:token\tr:float\tt:float")
    with pytest.raises(DataError, match="row 0, field user_id: field user_id has type float, expected token"):
        read_recbole(folder)
    folder = _write(tmp_path / "noitem", ["1\t2\t3"], header="user_id:token\tr:float\tt:float")
    with pytest.raises(DataError, match="row 0: header lacks the field item_id"):
        read_recbole(folder)
    with pytest.raises(DataError, match="not a folder"):
        read_recbole(tmp_path / "nowhere")


def test_parse_columns_keeps_long_and_unicode_tokens():
    long_id = "x" * 300  # wider than the first width guess: parsed again, nothing cut
    body = f"{long_id},é漢,1.5\nb,c,2\n".encode()
    columns, rows = parse_columns(body, source="r.csv", names=("u", "i", "v"), kinds=("bytes", "bytes", "float"),
                                  delimiter=",")
    assert columns["u"][0].decode() == long_id and columns["i"][0].decode() == "é漢"
    assert columns["v"].tolist() == [1.5, 2.0] and rows.tolist() == [1, 2]
    with pytest.raises(DataError, match=r"r\.csv: row 2: expected 3 comma-separated fields, got 2: 'b,c'"):
        parse_columns(b"a,b,1\nb,c\n", source="r.csv", names=("u", "i", "v"), kinds=("bytes", "bytes", "float"),
                      delimiter=",")
    with pytest.raises(DataError, match=r"row 1, field v: not a number: '1_0'"):
        parse_columns(b"a,b,1_0\n", source="r.csv", names=("u", "i", "v"), kinds=("bytes", "bytes", "float"),
                      delimiter=",")
