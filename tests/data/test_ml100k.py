"""Real MovieLens-100K: sizes, split, features, caching and a stable fingerprint."""
from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pytest

from mmdenoise.data import read_mmrec
from mmdenoise.data.builders.ml100k import GENRES, build_ml100k, parse_grouplens
from mmdenoise.data.registry import dataset_folder


def test_sizes_split_and_features(ml100k):
    assert (ml100k.n_users, ml100k.n_items) == (943, 1682)
    assert len(ml100k.train) + len(ml100k.valid) + len(ml100k.test) == 100_000
    for split in ("train", "valid", "test"):
        assert np.array_equal(np.unique(ml100k.split(split).users), np.arange(943)), split
    # MMRec's rule: every ml-100k user has >= 20 ratings, so round(10%) each for valid and test
    counts = np.bincount(np.concatenate([ml100k.train.users, ml100k.valid.users, ml100k.test.users]))
    assert np.array_equal(np.bincount(ml100k.test.users), np.rint(0.1 * counts).astype(int))
    assert ml100k.features["text"].shape == (1682, 384) and ml100k.features["text"].dtype == np.float32
    assert ml100k.features["genre"].shape == (1682, len(GENRES))
    assert ml100k.features["genre"].sum(1).min() >= 1
    assert ml100k.train.timestamps is not None


def test_text_embeddings_are_semantic(ml100k):
    # items 0 and 1 are "Toy Story (1995)" and "GoldenEye (1995)"; Toy Story's nearest neighbour by
    # text should be far more similar than an average pair (mean cosine is ~0.29)
    x = ml100k.features["text"]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x[0]
    sims[0] = -1
    assert sims.max() > 0.6 and np.mean(sims) < 0.4


def test_second_call_is_instant_and_rebuild_has_same_fingerprint(ml100k, tmp_path):
    start = time.perf_counter()
    build_ml100k(dataset_folder("ml-100k"))
    assert time.perf_counter() - start < 1.0
    first = read_mmrec(build_ml100k(tmp_path / "first"))
    rebuilt = read_mmrec(build_ml100k(tmp_path / "again"))
    assert rebuilt.fingerprint == first.fingerprint
    assert np.array_equal(rebuilt.features["text"], ml100k.features["text"])
    other_seed = read_mmrec(build_ml100k(tmp_path / "seed1", seed=1))
    assert other_seed.fingerprint != first.fingerprint


def test_grouplens_archive_parser():
    genre_flags = ["0"] * len(GENRES)
    genre_flags[GENRES.index("Comedy")] = "1"
    item_rows = [f"{i}|Movie {i} (199{i})|01-Jan-199{i}||http://x|" + "|".join(genre_flags) for i in (1, 2)]
    data_rows = ["1\t1\t5\t881250949", "1\t2\t3\t881250950", "2\t2\t4\t881250951"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-100k/u.item", "\n".join(item_rows) + "\n")
        z.writestr("ml-100k/u.data", "\n".join(data_rows) + "\n")
    raw = parse_grouplens(buf.getvalue())
    assert raw.texts == ["Movie 1 (1991)", "Movie 2 (1992)"]
    assert raw.genres[:, GENRES.index("Comedy")].tolist() == [1.0, 1.0] and raw.genres.sum() == 2
    assert raw.users.tolist() == [1, 1, 2] and raw.items.tolist() == [1, 2, 2]
    assert raw.timestamps.tolist() == [881250949, 881250950, 881250951]


@pytest.mark.slow
def test_kg_modality(tmp_path):
    ds = read_mmrec(build_ml100k(tmp_path / "kg", with_kg=True))
    kg = ds.features["kg"]
    assert kg.shape == (1682, 64) and np.isfinite(kg).all() and (np.abs(kg).sum(1) > 0).all()
