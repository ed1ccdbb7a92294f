"""RecBole atomic files: typed headers, token re-indexing, seeded split, clear errors."""
import numpy as np
import pytest

from mmdenoise.data.recbole import parse_atomic, read_recbole, token_ids
from mmdenoise.data.registry import read_folder
from mmdenoise.errors import DataError


def _write(folder, rows, header="user_id:token\titem_id:token\trating:float\ttimestamp:float"):
    folder.mkdir()
    (folder / f"{folder.name}.inter").write_text(header + "\n" + "\n".join(rows) + "\n")
    return folder


def test_numeric_tokens_reindexed_in_numeric_order():
    ids, vocab = token_ids(np.array(["10", "9", "100", "9"]))
    assert ids.tolist() == [1, 0, 2, 0] and vocab.tolist() == ["9", "10", "100"]


def test_read_recbole_folder(tmp_path):
    rows = [f"u{u}\ti{(u * 7 + k) % 30}\t4\t{1000 + k}" for u in range(12) for k in range(12)]
    ds = read_folder(_write(tmp_path / "toy", rows))
    assert ds.n_users == 12 and ds.n_items == 30
    assert len(ds.train) + len(ds.valid) + len(ds.test) == 144
    # 12 interactions per user: round(1.2) = 1 valid and 1 test each
    assert np.bincount(ds.test.users).tolist() == [1] * 12
    again = read_recbole(tmp_path / "toy", seed=0)
    assert again.fingerprint == ds.fingerprint
    assert read_recbole(tmp_path / "toy", seed=1).fingerprint != ds.fingerprint


def test_bad_rows_and_headers_name_the_place(tmp_path):
    folder = _write(tmp_path / "bad", ["1\t2\t3\t4", "1\t2\t3"])
    with pytest.raises(DataError, match=r"bad\.inter: row 2: expected 4 tab-separated fields, got 3"):
        read_recbole(folder)
    with pytest.raises(DataError, match="row 0: header field 'user_id' is not of the form"):
        parse_atomic("user_id\titem_id:token\n1\t2\n", "x.inter")
    folder = _write(tmp_path / "ts", ["1\t2\t3\tyesterday"])
    with pytest.raises(DataError, match="row 1, field timestamp: not a number: 'yesterday'"):
        read_recbole(folder)
