"""RecBole atomic files (``.inter``, ``.item``, ``.kg``, ``.link``): typed tab-separated tables.

A header names each column with its type, ``user_id:token``,
``rating:float``, ``class:token_seq``. Tokens are strings; they are
re-indexed to 0-based ids here (numeric tokens in numeric order, others in
lexicographic order).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset, Interactions
from .split import split_labels


def parse_atomic(text: str, source: str | Path) -> dict[str, np.ndarray]:
    """Parse atomic-file text → {column name (type stripped): str array [rows]}.

    Raises DataError naming ``source``, the row and the problem for a
    malformed header or a row with the wrong number of fields.
    """
    head, _, body = text.partition("\n")
    header = head.rstrip("\r").split("\t")
    names = []
    for col in header:
        name, sep, kind = col.partition(":")
        if not sep or not name or kind not in ("token", "token_seq", "float", "float_seq"):
            raise DataError(f"header field {col!r} is not of the form name:token|token_seq|float|float_seq",
                            path=source, row=0)
        names.append(name)
    lines = body.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    counts = np.fromiter((line.count("\t") for line in lines), dtype=np.int64, count=len(lines))
    bad = np.flatnonzero(counts != len(names) - 1)
    if bad.size:
        row = int(bad[0])
        raise DataError(f"expected {len(names)} tab-separated fields, got {counts[row] + 1}",
                        path=source, row=row + 1)
    if not lines:
        return {n: np.zeros(0, dtype=str) for n in names}
    table = np.loadtxt(io.StringIO("\n".join(lines)), delimiter="\t", dtype=str, comments=None,
                       quotechar=None, ndmin=2)
    return {n: table[:, k] for k, n in enumerate(names)}


def token_ids(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-index string tokens → (ids int64 [n], vocabulary [n_unique]); numeric tokens sort numerically."""
    vocab, inverse = np.unique(tokens, return_inverse=True)
    try:
        order = np.argsort(vocab.astype(np.float64), kind="stable")
    except ValueError:
        return inverse.astype(np.int64), vocab
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return rank[inverse].astype(np.int64), vocab[order]


def float_column(table: dict[str, np.ndarray], name: str, source) -> np.ndarray:
    col = table[name]
    try:
        return col.astype(np.float64)
    except ValueError:
        bad = next(k for k, v in enumerate(col) if not _is_float(v))
        raise DataError(f"not a number: {str(col[bad])!r}", path=source, row=bad + 1, field=name) from None


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_recbole(folder: str | Path, *, seed: int = 0) -> Dataset:
    """Read ``<name>.inter`` of a RecBole dataset folder; split per user 8:1:1 with ``seed``.

    Every row is an interaction (implicit feedback); ``timestamp`` is kept when
    present. RecBole folders carry no item feature matrices, so the Dataset has
    no modalities.
    """
    folder = Path(folder)
    candidates = sorted(folder.glob("*.inter"))
    if not candidates:
        raise DataError("no .inter file", path=folder)
    path = folder / f"{folder.name}.inter" if (folder / f"{folder.name}.inter").exists() else candidates[0]
    table = parse_atomic(path.read_text(encoding="utf-8"), path)
    for col in ("user_id", "item_id"):
        if col not in table:
            raise DataError(f"lacks column {col}:token; columns: {sorted(table)}", path=path, row=0)
    users, _ = token_ids(table["user_id"])
    items, _ = token_ids(table["item_id"])
    times = float_column(table, "timestamp", path) if "timestamp" in table else None
    labels = split_labels(users, seed=seed)
    splits = [Interactions(users[labels == k], items[labels == k], None if times is None else times[labels == k])
              for k in range(3)]
    return Dataset(folder.name, int(users.max()) + 1, int(items.max()) + 1, *splits, path=folder)
