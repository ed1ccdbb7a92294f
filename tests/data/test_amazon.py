"""Raw Amazon 2014 files → MMRec folder: k-core, re-indexing, text and image joins, bad input.

``write_amazon_files`` writes a small category in the release's own formats
(headerless ratings CSV, gzipped meta with single-quoted dict lines, binary
image-feature stream) with known answers planted in it.
"""
from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np
import pytest

from mmdenoise.data import read_mmrec
from mmdenoise.data.builders.amazon import IMAGE_DIM, build_amazon, item_sentence, read_image_features
from mmdenoise.data.builders.common import core_filter
from mmdenoise.data.text import encode_texts
from mmdenoise.errors import DataError

SPLITS = ("train", "valid", "test")


def write_amazon_files(folder: Path, seed: int = 0) -> dict:
    """A toy "Baby" category in Amazon's raw formats; returns paths and the planted answers.

    40 core users rate 8 of 25 core items each (every item gets 12 or 13
    ratings). Planted for the filter: a user with 3 ratings (dropped), which
    pushes a "cascade" item from 5 to 4 ratings (dropped), which pushes a
    user from 5 to 4 (dropped); an item with 2 ratings (dropped); one repeated
    rating. Meta: single-quoted dict lines, one JSON line, one item without a
    record, one item whose record has no text. Images: 21 of the 25 core
    items, plus records of unknown products, one all-zero record.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    users = [f"A{u:013d}" for u in range(40)]
    items = [f"B{i:09d}" for i in range(25)]
    rows = [(users[u], items[(u + 3 * j) % 25]) for u in range(40) for j in range(8)]
    rows += [("AWEAKUSER0001", items[k]) for k in (0, 1)] + [("AWEAKUSER0001", "BCASCADE01")]
    rows += [(users[u], "BCASCADE01") for u in (0, 1, 2)] + [("ACASCADEUSER1", "BCASCADE01")]
    rows += [("ACASCADEUSER1", items[k]) for k in (2, 3, 4, 5)]
    rows += [(users[5], "BRARE00001"), (users[6], "BRARE00001")]
    order = rng.permutation(len(rows))
    lines = [f"{rows[k][0]},{rows[k][1]},{rng.integers(1, 6)}.0,{1_300_000_000 + int(k) * 3600}" for k in order]
    lines.append(lines[0].rsplit(",", 1)[0] + ",1999999999")  # a repeated pair, later: dropped
    ratings = folder / "ratings_Baby.csv"
    ratings.write_text("\n".join(lines) + "\n")

    records = {}
    for k, asin in enumerate(items):
        records[asin] = {"asin": asin, "title": f"Soft baby blanket model {k}", "brand": f"Brand{k % 4}",
                         "categories": [["Baby", "Nursery", "Bedding"], ["Baby", f"Gifts {k % 3}"]],
                         "description": f"It's a cosy blanket &amp; more, number {k}.",
                         "imUrl": f"http://ecx.images-amazon.com/images/I/{asin}.jpg",
                         "related": {"also_bought": [items[(k + 1) % 25]]}, "salesRank": {"Baby": 100 + k}}
    records[items[3]] = {"asin": items[3], "imUrl": "http://x/3.jpg"}  # a record without any text
    del records[items[4]]  # no record at all
    meta_lines = [repr(r) for r in records.values()]  # Python dict literals, single quotes
    meta_lines[0] = json.dumps(records[items[0]])  # ... and one JSON line
    meta_lines.insert(5, repr({"asin": "BRARE00001", "title": "rare"}))
    meta = folder / "meta_Baby.json.gz"
    with gzip.open(meta, "wt", encoding="utf-8") as f:
        f.write("\n".join(meta_lines) + "\n")

    with_image = [a for k, a in enumerate(items) if k not in (7, 8, 9, 10)]
    vectors = {a: rng.normal(size=IMAGE_DIM).astype("<f4") for a in with_image}
    vectors[items[11]] = np.zeros(IMAGE_DIM, "<f4")  # an all-zero record carries no image
    stream = [(a.encode(), v) for a, v in vectors.items()]
    stream += [(b"BUNKNOWN%02d" % k, rng.normal(size=IMAGE_DIM).astype("<f4")) for k in range(3)]
    stream = [stream[k] for k in rng.permutation(len(stream))]
    images = folder / "image_features_Baby.b"
    with open(images, "wb") as f:
        for asin, v in stream:
            f.write(asin + v.tobytes())
    return {"ratings": ratings, "meta": meta, "images": images, "users": users, "items": items,
            "records": records, "vectors": vectors, "no_image": [items[k] for k in (7, 8, 9, 10, 11)],
            "no_text": [items[3], items[4]], "pairs": set(rows)}


def reference_core(pairs: set, k: int) -> set:
    """k-core by the definition, one removal sweep at a time (slow, obviously right)."""
    pairs = set(pairs)
    while True:
        users, items = {}, {}
        for u, i in pairs:
            users[u] = users.get(u, 0) + 1
            items[i] = items.get(i, 0) + 1
        kept = {(u, i) for u, i in pairs if users[u] >= k and items[i] >= k}
        if kept == pairs:
            return kept
        pairs = kept


@pytest.fixture(scope="module")
def amazon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("amazon")
    raw = write_amazon_files(folder / "raw")
    out = build_amazon(raw["ratings"], raw["meta"], folder / "baby", image_features=raw["images"])
    return raw, read_mmrec(out), out


def _pairs(ds):
    return np.concatenate([ds.split(s).users for s in SPLITS]), np.concatenate([ds.split(s).items for s in SPLITS])


def test_five_core_and_contiguous_ids(amazon):
    raw, ds, _ = amazon
    users, items = _pairs(ds)
    assert ds.name == "Baby"
    assert np.array_equal(np.unique(users), np.arange(ds.n_users))
    assert np.array_equal(np.unique(items), np.arange(ds.n_items))
    assert np.bincount(users).min() >= 5 and np.bincount(items).min() >= 5
    expected = reference_core(raw["pairs"], 5)
    assert len(expected) == users.size == 320  # the planted cascade removes every extra row
    # ids are the sorted raw ids
    user_vocab = sorted({u for u, _ in expected})
    item_vocab = sorted({i for _, i in expected})
    assert {(user_vocab[u], item_vocab[i]) for u, i in zip(users.tolist(), items.tolist())} == expected
    assert (ds.n_users, ds.n_items) == (40, 25)
    for split in ("valid", "test"):
        assert np.array_equal(np.unique(ds.split(split).users), np.arange(40))  # 8 each: n−2/1/1
    assert ds.train.timestamps.max() < 1_999_999_999  # the repeated pair kept its first line


def test_image_join_and_missing_images(amazon):
    raw, ds, _ = amazon
    image = np.asarray(ds.features["image"])
    assert image.shape == (25, IMAGE_DIM) and image.dtype == np.float32
    items = raw["items"]  # already sorted: item id k is items[k]
    for k in (0, 6, 24):
        np.testing.assert_array_equal(image[k], raw["vectors"][items[k]])
    have = [k for k, a in enumerate(items) if a not in raw["no_image"]]
    assert len(have) == 20
    mean = np.mean([raw["vectors"][items[k]] for k in have], axis=0, dtype=np.float64)
    for asin in raw["no_image"]:
        np.testing.assert_allclose(image[items.index(asin)], mean, rtol=1e-5, atol=1e-6)


def test_text_features(amazon):
    raw, ds, out = amazon
    text = np.asarray(ds.features["text"])
    assert text.shape == (25, 384) and text.dtype == np.float32
    items = raw["items"]
    sentence = item_sentence(raw["records"][items[1]])
    assert sentence == ("Soft baby blanket model 1 Brand1 Baby Nursery Bedding Gifts 1 "
                        "It's a cosy blanket & more, number 1.")
    np.testing.assert_allclose(text[[0, 1]], encode_texts([item_sentence(raw["records"][items[0]]), sentence]),
                               atol=1e-5)
    have = [k for k, a in enumerate(items) if a not in raw["no_text"]]
    for asin in raw["no_text"]:
        np.testing.assert_allclose(text[items.index(asin)], text[have].mean(axis=0), atol=1e-6)
    info = json.loads((out / "build.json").read_text())
    assert info["counts"] == {"ratings": 334, "distinct_pairs": 333, "interactions": 320, "users": 40,
                              "items": 25, "items_with_text": 23, "items_with_image": 20}


def test_second_call_is_instant_and_parameters_are_checked(amazon):
    raw, ds, out = amazon
    start = time.perf_counter()
    assert build_amazon(raw["ratings"], raw["meta"], out, image_features=raw["images"]) == out
    assert time.perf_counter() - start < 0.5
    with pytest.raises(DataError, match=r"k_core=5 \(asked: 3\)"):
        build_amazon(raw["ratings"], raw["meta"], out, image_features=raw["images"], k_core=3)


def test_without_images_and_other_seed(amazon, tmp_path):
    raw, ds, _ = amazon
    other = read_mmrec(build_amazon(raw["ratings"], raw["meta"], tmp_path / "seed1", seed=1))
    assert list(other.features) == ["text"]
    np.testing.assert_array_equal(other.features["text"], ds.features["text"])
    assert sorted(zip(*_pairs(other))) == sorted(zip(*_pairs(ds)))
    assert not np.array_equal(other.test.items, ds.test.items)


@pytest.mark.parametrize("seed", range(5))
def test_core_filter_matches_the_definition(seed):
    rng = np.random.default_rng(seed)
    users, items = rng.zipf(1.6, 3000) % 300, rng.zipf(1.4, 3000) % 200
    users, items = np.unique(np.stack([users, items]), axis=1)  # distinct pairs, as the builder has them
    keep = core_filter(users, items, 3)
    got = set(zip(users[keep].tolist(), items[keep].tolist()))
    assert got == reference_core(set(zip(users.tolist(), items.tolist())), 3)
    assert got, "the random graph should keep a core"


def test_bad_ratings_lines(tmp_path):
    raw = write_amazon_files(tmp_path / "raw")
    lines = raw["ratings"].read_text().split("\n")
    lines[6] = "AUSER,BITEM,5.0"
    raw["ratings"].write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"ratings_Baby\.csv: row 7: expected 4 comma-separated fields, got 3"):
        build_amazon(raw["ratings"], raw["meta"], tmp_path / "out")
    lines[6] = "AUSER,BITEM,5.0,yesterday"
    raw["ratings"].write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"row 7, field timestamp: not a number: 'yesterday'"):
        build_amazon(raw["ratings"], raw["meta"], tmp_path / "out")
    with pytest.raises(DataError, match="no interactions survive the 50-core filter"):
        build_amazon(write_amazon_files(tmp_path / "raw2")["ratings"], raw["meta"], tmp_path / "out", k_core=50)
    assert not (tmp_path / "out").exists()


def test_meta_lines_are_never_executed(tmp_path):
    raw = write_amazon_files(tmp_path / "raw")
    marker = tmp_path / "pwned"
    with gzip.open(raw["meta"], "rt") as f:
        lines = f.read().split("\n")
    lines[2] = f"__import__('os').system('touch {marker}')"
    with gzip.open(raw["meta"], "wt") as f:
        f.write("\n".join(lines))
    with pytest.raises(DataError, match=r"meta_Baby\.json\.gz: row 3: not a JSON object or a Python dict literal"):
        build_amazon(raw["ratings"], raw["meta"], tmp_path / "out")
    assert not marker.exists()
    lines[2] = "{'title': 'no asin'}"
    with gzip.open(raw["meta"], "wt") as f:
        f.write("\n".join(lines))
    with pytest.raises(DataError, match=r"row 3, field asin: record has no string 'asin'"):
        build_amazon(raw["ratings"], raw["meta"], tmp_path / "out")


def test_bad_image_file(tmp_path):
    raw = write_amazon_files(tmp_path / "raw")
    data = raw["images"].read_bytes()
    raw["images"].write_bytes(data[:-100])
    with pytest.raises(DataError, match=r"image_features_Baby\.b: size \d+ is not a multiple of the 16394-byte"):
        build_amazon(raw["ratings"], raw["meta"], tmp_path / "out", image_features=raw["images"])
    raw["images"].write_bytes(b"")
    with pytest.raises(DataError, match="none of the 25 items has a usable image feature record"):
        build_amazon(raw["ratings"], raw["meta"], tmp_path / "out", image_features=raw["images"])
    with pytest.raises(DataError, match="no such file"):
        build_amazon(raw["ratings"], raw["meta"], tmp_path / "out", image_features=tmp_path / "missing.b")


def test_image_reader_keeps_the_first_of_repeated_records(tmp_path):
    path = tmp_path / "x.b"
    first, second = np.full(IMAGE_DIM, 1.0, "<f4"), np.full(IMAGE_DIM, 2.0, "<f4")
    path.write_bytes(b"B000000001" + first.tobytes() + b"B000000001" + second.tobytes())
    features, found = read_image_features(path, np.array(["B000000001", "B000000002"]))
    assert found.tolist() == [True, False]
    np.testing.assert_array_equal(features[0], first)


def test_the_command_names_the_missing_files(tmp_path):
    from typer.testing import CliRunner

    from mmdenoise.cli import app
    result = CliRunner().invoke(app, ["data", "build", "amazon", "--ratings", str(tmp_path / "r.csv"),
                                      "--out", str(tmp_path / "d")], terminal_width=200)
    assert result.exit_code == 2 and "amazon needs --ratings, --meta and --out; missing --meta" in result.output
    assert not (tmp_path / "d").exists()
