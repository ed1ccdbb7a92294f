"""``mmdenoise data build amazon``: MMRec's Amazon preprocessing as one function.

Inputs, the public 2014 Amazon release (McAuley et al., "Image-based
recommendations on styles and substitutes", SIGIR 2015):

- ``ratings_<Category>.csv``: no header, ``user,item,rating,timestamp`` per
  line (item = the product's ASIN, timestamp in Unix seconds);
- ``meta_<Category>.json.gz``: one product per line, written as a Python dict
  literal (single quotes), with keys ``asin``, ``title``, ``brand``,
  ``categories`` (a list of category paths, each a list of names),
  ``description``, ``imUrl``, ``related``, ``salesRank``, ``price``; plain
  (not gzipped) files are accepted too;
- ``image_features_<Category>.b`` (optional): a stream of records, each a
  10-byte ASCII ASIN followed by 4,096 little-endian float32 values (CNN
  features of the product image).

Steps: every rating is an interaction (implicit feedback), a repeated
(user, item) pair keeps its first line; iterative k-core filter (every user
and every item keeps at least ``k_core`` interactions); users and items
re-indexed in sorted order of their ids (``token_ids``); per-user 8:1:1 split
(``split_labels``); modalities ``text`` (384-d, ``encode_texts`` of "title
brand categories description", MMRec's sentence) and ``image`` (4,096-d).
An item without text or without an image gets the mean vector of the items
that have one. Output: the MMRec layout plus ``build.json``.
"""
from __future__ import annotations

import ast
import gzip
import html
import json
import re
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..dataset import Dataset
from ..recbole import interaction_ids, parse_columns, read_file
from ..text import EMBEDDING_DIM, encode_texts, encoder_source
from .common import core_filter, reuse_build, write_build

IMAGE_DIM = 4096
ASIN_BYTES = 10
IMAGE_RECORD = np.dtype([("asin", f"S{ASIN_BYTES}"), ("features", "<f4", (IMAGE_DIM,))])
BUILDER_VERSION = 1
_ASIN = re.compile(r"""['"]asin['"]\s*:\s*['"]([^'"]*)['"]""")
_CHUNK_RECORDS = 4096


# ----------------------------------------------------------------------- ratings
def read_ratings(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``ratings_<Category>.csv`` → (users bytes [n], items bytes [n], timestamps float64 [n], rows int64 [n]).

    rows: line numbers. DataError naming the file and line for a line without
    four comma-separated fields, a rating or timestamp that is not a number,
    an empty id or a non-finite timestamp.
    """
    columns, rows = parse_columns(read_file(path), source=path, names=("user", "item", "rating", "timestamp"),
                                  kinds=("bytes", "bytes", "float", "float"), delimiter=",",
                                  use=("user", "item", "timestamp"))
    if rows.size == 0:
        raise DataError("no ratings", path=path)
    times = columns["timestamp"]
    bad = np.flatnonzero(~np.isfinite(times))
    if bad.size:
        raise DataError(f"timestamp {times[bad[0]]} is not finite", path=path, row=int(rows[bad[0]]),
                        field="timestamp")
    return columns["user"], columns["item"], times, rows


# -------------------------------------------------------------------------- text
def read_meta(path: Path, asins: np.ndarray) -> dict[str, dict]:
    """The metadata records of ``asins`` (str [m]) from ``meta_<Category>.json.gz`` → {asin: record}.

    Each line is parsed with ``json.loads`` and, when that fails, with
    ``ast.literal_eval`` (a Python literal, never code). Only lines of wanted
    products are parsed in full; the others are skipped after finding their
    ``asin``. A line that is neither JSON nor a dict literal, or has no
    ``asin``, is a DataError naming the file and line. A repeated asin keeps
    its first record.
    """
    wanted = set(asins.tolist())
    found: dict[str, dict] = {}
    try:
        with _open_text(path) as lines:
            for row, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                match = _ASIN.search(line)
                if match is not None and match.group(1) not in wanted:
                    continue
                record = _parse_record(line, path, row)
                asin = record.get("asin")
                if not isinstance(asin, str):
                    raise DataError("record has no string 'asin'", path=path, row=row, field="asin")
                if asin in wanted and asin not in found:
                    found[asin] = record
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read: {exc}", path=path) from None
    return found


def _open_text(path: Path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")


def _parse_record(line: str, path: Path, row: int) -> dict:
    try:
        record = json.loads(line)
    except ValueError:
        try:
            record = ast.literal_eval(line.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise DataError("not a JSON object or a Python dict literal", path=path, row=row) from None
    if not isinstance(record, dict):
        raise DataError(f"expected a dict, got {type(record).__name__}", path=path, row=row)
    return record


def item_sentence(record: dict) -> str:
    """MMRec's item sentence: title, brand, category names (each once, in order) and description,
    joined by spaces; missing or non-text fields are left out; HTML entities are decoded."""
    parts = [record.get("title"), record.get("brand")]
    names: list[str] = []
    categories = record.get("categories")
    if isinstance(categories, list):
        for path in categories:
            for name in path if isinstance(path, list) else [path]:
                if isinstance(name, str) and name not in names:
                    names.append(name)
    parts.extend(names)
    parts.append(record.get("description"))
    text = " ".join(" ".join(p.split()) for p in parts if isinstance(p, str) and p.strip())
    return html.unescape(text)


# ------------------------------------------------------------------------ images
def read_image_features(path: Path, asins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image features of ``asins`` (str [m]) from an ``image_features_<Category>.b`` stream.

    Returns (float32 [m, 4096], found bool [m]). Records are read through a
    memory map in chunks (the files reach tens of GB), matched to ``asins``
    with a sorted search; a repeated asin keeps its first record. A record
    that is all zero or not finite counts as missing (it carries no image).
    DataError when the file size is not a whole number of records.
    """
    size = path.stat().st_size
    if size % IMAGE_RECORD.itemsize:
        raise DataError(f"size {size} is not a multiple of the {IMAGE_RECORD.itemsize}-byte record "
                        f"({ASIN_BYTES}-byte asin + {IMAGE_DIM} float32); the file is truncated or not "
                        "in this format", path=path)
    out = np.zeros((asins.size, IMAGE_DIM), dtype=np.float32)
    found = np.zeros(asins.size, dtype=bool)
    if size == 0:
        return out, found
    records = np.memmap(path, dtype=IMAGE_RECORD, mode="r")
    keys = np.char.encode(asins.astype(str), "ascii", errors="replace") if asins.size else asins.astype("S10")
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    for start in range(0, records.shape[0], _CHUNK_RECORDS):
        chunk = records[start:start + _CHUNK_RECORDS]
        names = np.char.strip(chunk["asin"])
        pos = np.minimum(np.searchsorted(sorted_keys, names), sorted_keys.size - 1)
        match = sorted_keys[pos] == names
        if not match.any():
            continue
        target = order[pos[match]]
        vectors = np.asarray(chunk["features"][match], dtype=np.float32)
        usable = np.isfinite(vectors).all(axis=1) & np.any(vectors != 0, axis=1) & ~found[target]
        target, vectors = target[usable], vectors[usable]
        target, first = np.unique(target, return_index=True)  # a repeat inside one chunk keeps the first
        out[target] = vectors[first]
        found[target] = True
    del records
    return out, found


def fill_missing(features: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Rows where ``found`` is False (still all zero) get the mean of the found rows; in place.

    features: float32 [m, d]; found: bool [m] with at least one True. The sum
    runs over all rows (the missing ones add zero), so no copy of the matrix
    is made.
    """
    mean = features.sum(axis=0, dtype=np.float64) / np.count_nonzero(found)
    features[~found] = mean.astype(np.float32)
    return features


# ------------------------------------------------------------------------- build
def build_amazon(ratings: str | Path, meta: str | Path, out: str | Path, *,
                 image_features: str | Path | None = None, seed: int = 0, k_core: int = 5,
                 overwrite: bool = False) -> Path:
    """Build an Amazon 2014 category into ``out`` in the MMRec layout and return ``out``.

    ratings, meta, image_features: the raw files (see the module docstring).
    If ``out`` already holds this build it is returned at once (a build with
    other parameters is a DataError unless ``overwrite``). The dataset is
    named by the category in ``ratings_<Category>.csv`` (else by ``out``).
    Raises DataError for unreadable or malformed input (naming file and
    line), when nothing survives the k-core filter, or when no kept item has
    metadata text or (with ``image_features``) an image.
    """
    ratings, meta, out = Path(ratings), Path(meta), Path(out).expanduser()
    image_path = None if image_features is None else Path(image_features)
    if int(k_core) < 1:
        raise DataError(f"k_core must be >= 1, got {k_core}")
    params = {"dataset": "amazon", "ratings": ratings.name, "meta": meta.name,
              "image_features": None if image_path is None else image_path.name,
              "seed": int(seed), "k_core": int(k_core), "version": BUILDER_VERSION}
    if reuse_build(out, params, overwrite=overwrite):
        return out
    for path in (ratings, meta, image_path):
        if path is not None and not path.is_file():
            raise DataError("no such file", path=path)

    user_tokens, item_tokens, times, rows = read_ratings(ratings)
    users, items, kept, _, _ = interaction_ids(user_tokens, item_tokens, source=ratings, rows=rows)
    n_ratings, n_distinct = rows.size, kept.size
    core = core_filter(users, items, int(k_core))
    if not core.any():
        raise DataError(f"no interactions survive the {k_core}-core filter ({n_distinct} distinct ratings)",
                        path=ratings)
    kept = kept[core]
    users, items, _, user_vocab, item_vocab = interaction_ids(user_tokens[kept], item_tokens[kept],
                                                              source=ratings, rows=rows[kept])
    timestamps = times[kept]

    records = read_meta(meta, item_vocab)
    sentences = [item_sentence(records[a]) if a in records else "" for a in item_vocab.tolist()]
    has_text = np.array([bool(s) for s in sentences])
    if not has_text.any():
        raise DataError(f"none of the {item_vocab.size} items left after the {k_core}-core filter has "
                        "metadata text (title, brand, categories or description)", path=meta)
    features = {}
    n_images = None
    if image_path is not None:  # read before encoding text, so that a bad file fails fast
        image, has_image = read_image_features(image_path, item_vocab)
        if not has_image.any():
            raise DataError(f"none of the {item_vocab.size} items has a usable image feature record",
                            path=image_path)
        features["image"] = fill_missing(image, has_image)
        n_images = int(has_image.sum())
    text = np.zeros((item_vocab.size, EMBEDDING_DIM), dtype=np.float32)
    text[has_text] = encode_texts([s for s, t in zip(sentences, has_text) if t])
    features["text"] = fill_missing(text, has_text)

    name = _category(ratings) or out.name
    dataset = Dataset.from_interactions(name, users, items, n_users=int(user_vocab.size), n_items=int(item_vocab.size),
                                        timestamps=timestamps, features=features, seed=seed)
    info = {"source": {"ratings": str(ratings), "meta": str(meta),
                       "image_features": None if image_path is None else str(image_path)},
            "text_encoder": encoder_source(),
            "counts": {"ratings": int(n_ratings), "distinct_pairs": int(n_distinct),
                       "interactions": int(users.size), "users": int(user_vocab.size),
                       "items": int(item_vocab.size), "items_with_text": int(has_text.sum()),
                       "items_with_image": n_images}}
    return write_build(dataset, out, params=params, info=info, inter_name=out.name)


def _category(ratings: Path) -> str | None:
    match = re.fullmatch(r"ratings_(.+)\.csv", ratings.name)
    return match.group(1) if match else None
