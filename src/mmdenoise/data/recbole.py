"""RecBole atomic files (``.inter``, ``.item``, ``.kg``, ``.link``): typed, tab-separated tables.

Format (RecBole user guide, "Atomic Files"): UTF-8 text, one record per line,
fields separated by tabs, no quoting. The first line names every field with
its type, ``name:type``, where type is ``token`` (a string id), ``token_seq``
(space-separated tokens), ``float`` or ``float_seq`` (space-separated
numbers)::

    user_id:token   item_id:token   rating:float    timestamp:float
    196             242             3               881250949

Parsing runs in numpy's C reader (``np.loadtxt`` with a structured dtype); a
line-by-line scan runs only after a failure, to name the bad line. Row numbers
in errors follow the MMRec reader's rule: the header is row 0, the first
record row 1, and row = line number − 1 for files with a header. For headerless
files (``parse_columns(..., first_row=1)``) row = line number.

Tokens are re-indexed to dense 0-based ids by ``token_ids``: in numeric order
when every token of the field is a plain non-negative integer (``"1" < "2" <
"10"``), otherwise in lexicographic (byte) order. Sorting, rather than order of
first appearance, makes ids independent of the row order of the file.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import DataError
from .dataset import Dataset
from .mmrec import _record_rows, existing_folder

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
NUMERIC_TYPES = ("float",)
USER_FIELD, ITEM_FIELD, TIME_FIELD = "user_id", "item_id", "timestamp"
# First guess for the width of byte-string fields; widened to the longest line when a value fills it.
_TOKEN_WIDTH = 64


# ----------------------------------------------------------------------- columns
def parse_columns(body: bytes, *, source: str | Path, names: Sequence[str], kinds: Sequence[str],
                  delimiter: str = "\t", first_row: int = 1,
                  use: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Parse delimited records (no header) into typed columns, vectorised.

    body: the records, raw bytes (UTF-8 or ASCII; ``\\r\\n`` accepted). Blank
        lines are skipped (as pandas, which RecBole and MMRec use, skips them).
    names, kinds: one entry per field; kind ``"float"`` parses to float64,
        anything else stays a byte string (``np.bytes_``, the raw UTF-8).
    use: the fields to return (default all); the others are checked only for
        being present.
    first_row: the row number of the first line of ``body`` in errors.

    Returns (name -> array [n], rows int64 [n]: each record's row number, so
    that checks done after parsing can name the right line). Raises DataError
    naming ``source``, the row and the field for a wrong field count or a
    number that does not parse.
    """
    if len(names) != len(kinds):
        raise ValueError("names and kinds differ in length")
    use = list(names) if use is None else list(use)
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
    # latin-1 maps every byte to one character and back: byte-string fields keep the raw UTF-8
    text = body.decode("latin-1")
    rows = _record_rows(text) + (first_row - 1)
    if rows.size == 0:
        return {n: np.empty(0, np.float64 if kinds[names.index(n)] == "float" else "S1") for n in use}, rows
    longest = _longest_line(body)
    width = min(_TOKEN_WIDTH, longest)
    while True:
        dtype = [(f"f{k}", "f8" if kind == "float" else f"S{width}") for k, kind in enumerate(kinds)]
        try:
            table = np.loadtxt(io.StringIO(text), delimiter=delimiter, dtype=dtype, comments=None,
                               quotechar=None, ndmin=1, encoding=None)
        except ValueError as exc:
            _locate_bad_line(text, source=source, names=names, kinds=kinds, delimiter=delimiter,
                             first_row=first_row, fallback=str(exc))
        if table.shape[0] != rows.size:  # a line of blanks only would be counted differently
            _locate_bad_line(text, source=source, names=names, kinds=kinds, delimiter=delimiter,
                             first_row=first_row, fallback="record count mismatch")
        full = [k for k, kind in enumerate(kinds)
                if kind != "float" and np.char.str_len(table[f"f{k}"]).max(initial=0) >= width]
        if not full or width >= longest:
            break
        width = longest  # a value may have been cut at the guessed width: parse again, wide enough
    return {n: table[f"f{names.index(n)}"] for n in use}, rows


def _longest_line(body: bytes) -> int:
    ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == ord("\n"))
    ends = np.append(ends, len(body))
    return int(max(1, np.diff(np.r_[-1, ends]).max() - 1))


def _locate_bad_line(text: str, *, source, names, kinds, delimiter, first_row, fallback: str) -> None:
    """Raise a DataError for the first malformed record (error path only: a Python scan)."""
    for row, line in enumerate(text.split("\n"), start=first_row):
        if not line:
            continue
        fields = line.split(delimiter)
        if len(fields) != len(names):
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise DataError(f"expected {len(names)} {_delimiter_name(delimiter)}-separated fields, "
                            f"got {len(fields)}: {_as_utf8(shown)!r}", path=source, row=row)
        for name, kind, value in zip(names, kinds, fields):
            if kind == "float" and not _is_number(value):
                raise DataError(f"not a number: {_as_utf8(value)!r}", path=source, row=row, field=name)
    raise DataError(f"could not parse: {fallback}", path=source)


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma"}.get(delimiter, repr(delimiter))


def _as_utf8(latin1: str) -> str:
    return latin1.encode("latin-1").decode("utf-8", errors="replace")


def _is_number(value: str) -> bool:
    if "_" in value:  # float() accepts "1_000"; numpy's reader does not
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def decode_tokens(values: np.ndarray, *, source, field: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Byte-string tokens → str array, refusing invalid UTF-8 (DataError naming the first bad row)."""
    if values.dtype.kind == "U":
        return values
    try:
        return np.char.decode(values, "utf-8")
    except UnicodeDecodeError:
        for k, v in enumerate(values.tolist()):
            try:
                v.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"not UTF-8 text: {v!r}", path=source,
                                row=None if rows is None else int(rows[k]), field=field) from None
        raise


def token_ids(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-index tokens → (ids int64 [n] in 0..k−1, vocabulary str [k] with vocabulary[ids] == tokens).

    tokens: str or byte-string array [n]. Order: numeric when every distinct
    token is a non-negative integer written without leading zeros, else
    lexicographic (on the UTF-8 bytes). Only the distinct tokens are decoded.
    """
    tokens = np.asarray(tokens)
    vocab, inverse = np.unique(tokens, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    if vocab.size and np.all(np.char.isdigit(vocab)):
        lengths = np.char.str_len(vocab)
        leading_zero = np.char.startswith(vocab, b"0" if vocab.dtype.kind == "S" else "0") & (lengths > 1)
        if not np.any(leading_zero):
            # for integers without leading zeros, (length, text) order is numeric order, with no overflow
            order = np.lexsort((vocab, lengths))
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            inverse, vocab = rank[inverse], vocab[order]
    if vocab.dtype.kind == "S":
        vocab = np.char.decode(vocab, "utf-8", errors="replace")
    return inverse, vocab


def split_seq(values: np.ndarray) -> list[list[str]]:
    """``token_seq`` values (str or bytes [n]) → lists of tokens (space-separated; small files only)."""
    return [(v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v).split()
            for v in values.tolist()]


# ------------------------------------------------------------------------- tables
@dataclass(frozen=True, eq=False)
class AtomicTable:
    """One parsed atomic file.

    names, types: the header's fields in file order.
    columns: the parsed fields; ``float`` → float64 [n], every other type →
        raw UTF-8 byte strings [n] (decode with ``decode_tokens`` or
        ``token_ids``; ``token_seq`` with ``split_seq``).
    rows: int64 [n], each record's row number (line number − 1).
    """

    source: str | Path
    names: list[str]
    types: list[str]
    columns: dict[str, np.ndarray]
    rows: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.size)

    def type_of(self, name: str) -> str:
        return self.types[self.names.index(name)]

    def require(self, name: str, types: Sequence[str]) -> np.ndarray:
        """The column ``name``, checking that the header declares it with one of ``types``."""
        if name not in self.names:
            raise DataError(f"header lacks the field {name} ({'|'.join(types)}); fields: {self.header()}",
                            path=self.source, row=0)
        if self.type_of(name) not in types:
            raise DataError(f"field {name} has type {self.type_of(name)}, expected {'|'.join(types)}",
                            path=self.source, row=0, field=name)
        if name not in self.columns:
            raise KeyError(f"{name} was not parsed (pass it in fields=)")
        return self.columns[name]

    def header(self) -> list[str]:
        return [f"{n}:{t}" for n, t in zip(self.names, self.types)]

    def error(self, index: int, problem: str, field: str | None = None) -> DataError:
        """A DataError for record ``index`` (position in the columns), naming its file row."""
        return DataError(problem, path=self.source, row=int(self.rows[index]), field=field)


def parse_atomic(data: bytes | str, source: str | Path, fields: Sequence[str] | None = None) -> AtomicTable:
    """Parse the text of an atomic file (header ``name:type`` + records); see the module docstring.

    fields: the columns to parse (default all); the others are only checked
    for being present on every line. Raises DataError naming ``source``, row
    and field for a malformed header, a wrong field count or a bad number.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    head, _, body = data.partition(b"\n")
    try:
        header = head.decode("utf-8").rstrip("\r").split("\t")
    except UnicodeDecodeError:
        raise DataError("header is not UTF-8 text", path=source, row=0) from None
    names, types = [], []
    for col in header:
        name, sep, kind = col.strip().rpartition(":")
        if not sep or not name or kind not in FIELD_TYPES:
            raise DataError(f"header field {col!r} is not of the form name:{'|'.join(FIELD_TYPES)}",
                            path=source, row=0)
        names.append(name)
        types.append(kind)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"header repeats field(s) {dupes}", path=source, row=0)
    use = names if fields is None else list(fields)
    missing = [f for f in use if f not in names]
    if missing:
        raise DataError(f"header lacks field(s) {missing}; fields: {header}", path=source, row=0)
    kinds = ["float" if t in NUMERIC_TYPES else "bytes" for t in types]
    columns, rows = parse_columns(body, source=source, names=names, kinds=kinds, first_row=1, use=use)
    return AtomicTable(source, names, types, columns, rows)


def read_file(path: Path) -> bytes:
    """The bytes of ``path``; DataError "cannot read: <reason>" naming it when the OS refuses."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", path=path) from None


def read_atomic(path: str | Path, fields: Sequence[str] | None = None) -> AtomicTable:
    """Read and parse one atomic file (see ``parse_atomic``)."""
    path = Path(path)
    return parse_atomic(read_file(path), path, fields)


# ------------------------------------------------------------------- interactions
def interaction_ids(users: np.ndarray, items: np.ndarray, *, source, rows: np.ndarray,
                    item_vocab: np.ndarray | None = None):
    """Tokens of (user, item) records → dense ids, dropping repeated pairs.

    users, items: token arrays [n] (str or bytes); rows: their file rows.
    item_vocab: when given, the item ids are positions in this sorted
        vocabulary (as returned by ``token_ids``) and an item outside it is a
        DataError; otherwise the items' own vocabulary is used.
    A repeated (user, item) pair keeps its first record only (an implicit
    interaction either happened or not; a duplicate would let one pair sit in
    train and test at once).

    Returns (users int64 [m], items int64 [m], kept int64 [m]: the positions
    of the kept records, user vocabulary, item vocabulary).
    """
    for name, tokens in (("user", users), ("item", items)):
        empty = np.flatnonzero(np.char.str_len(tokens) == 0)
        if empty.size:
            raise DataError(f"empty {name} id", path=source, row=int(rows[empty[0]]), field=f"{name}_id")
    user_ids, user_vocab = token_ids(users)
    if item_vocab is None:
        item_ids, item_vocab = token_ids(items)
    else:
        item_ids = lookup_tokens(items, item_vocab, source=source, rows=rows, what="item")
    keys = user_ids * np.int64(max(1, item_vocab.size)) + item_ids
    _, first = np.unique(keys, return_index=True)
    kept = np.sort(first)
    return user_ids[kept], item_ids[kept], kept, user_vocab, item_vocab


def lookup_tokens(tokens: np.ndarray, vocab: np.ndarray, *, source, rows: np.ndarray | None,
                  what: str) -> np.ndarray:
    """Positions of ``tokens`` (str or bytes [n]) in ``vocab`` (str [k], any order) → int64 [n].

    A token absent from ``vocab`` is a DataError naming the first such row.
    """
    tokens = decode_tokens(np.asarray(tokens), source=source, field=f"{what}_id", rows=rows)
    if vocab.size == 0:
        hit, ok = np.zeros(tokens.size, np.int64), np.zeros(tokens.size, bool)
    else:
        order = np.argsort(vocab, kind="stable")
        hit = order[np.minimum(np.searchsorted(vocab[order], tokens), vocab.size - 1)]
        ok = vocab[hit] == tokens
    bad = np.flatnonzero(~ok)
    if bad.size:
        raise DataError(f"unknown {what} {str(tokens[bad[0]])!r}", path=source,
                        row=None if rows is None else int(rows[bad[0]]), field=f"{what}_id")
    return hit.astype(np.int64)


# --------------------------------------------------------------------- item data
def item_features(table: AtomicTable, item_vocab: np.ndarray, fields: Sequence[str]) -> dict[str, np.ndarray]:
    """Modalities from ``.item`` fields, row i = item ``item_vocab[i]`` → {field: float32 [n_items, d]}.

    ``float_seq`` fields become dense vectors (every row the same length);
    ``token`` and ``token_seq`` fields become multi-hot vectors over the
    field's tokens (sorted). Every item must have a row in the file and a
    non-empty value (DataError otherwise, naming the file and the item).
    Rows for items that are not in ``item_vocab`` are ignored.
    """
    item_col = table.require(ITEM_FIELD, ("token",))
    tokens = decode_tokens(item_col, source=table.source, field=ITEM_FIELD, rows=table.rows)
    order = np.argsort(tokens, kind="stable")
    pos = np.searchsorted(tokens[order], item_vocab)
    pos = np.minimum(pos, max(tokens.size - 1, 0))
    record = order[pos] if tokens.size else np.zeros(item_vocab.size, np.int64)
    missing = np.flatnonzero(tokens[record] != item_vocab) if tokens.size else np.arange(item_vocab.size)
    if missing.size:
        raise DataError(f"item {str(item_vocab[missing[0]])!r} has interactions but no row", path=table.source,
                        field=ITEM_FIELD)
    out = {}
    for name in fields:
        kind = table.type_of(name) if name in table.names else None
        column = table.require(name, ("float_seq", "token", "token_seq"))[record]
        rows = table.rows[record]
        if kind == "float_seq":
            out[name] = _float_seq_matrix(column, table, name, rows)
        else:
            out[name] = _multi_hot(split_seq(column) if kind == "token_seq" else
                                   [[t] if t else [] for t in decode_tokens(column, source=table.source,
                                                                            field=name).tolist()],
                                   table, name, rows)
    return out


def _float_seq_matrix(column: np.ndarray, table: AtomicTable, name: str, rows: np.ndarray) -> np.ndarray:
    """Space-separated numbers per row → float32 [n, d] (``.item`` files are small: parsed row by row)."""
    vectors = []
    for k, value in enumerate(column.tolist()):
        parts = value.split()
        bad = next((p for p in parts if not _is_number(p.decode("latin-1"))), None)
        if bad is not None:
            raise DataError(f"not a number: {bad.decode('utf-8', 'replace')!r}", path=table.source,
                            row=int(rows[k]), field=name)
        if not parts or (vectors and len(parts) != len(vectors[0])):
            expected = len(vectors[0]) if vectors else "at least 1"
            raise DataError(f"expected {expected} space-separated numbers, got {len(parts)}",
                            path=table.source, row=int(rows[k]), field=name)
        vectors.append(np.array(parts, dtype=np.float64))
    return np.stack(vectors).astype(np.float32)


def _multi_hot(token_lists: list[list[str]], table: AtomicTable, name: str, rows: np.ndarray) -> np.ndarray:
    lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise DataError("empty value (the item's feature row would be all zero)", path=table.source,
                        row=int(rows[empty[0]]), field=name)
    flat = np.array([t for tokens in token_lists for t in tokens])
    ids, vocab = token_ids(flat)
    out = np.zeros((len(token_lists), vocab.size), dtype=np.float32)
    out[np.repeat(np.arange(len(token_lists)), lengths), ids] = 1.0
    return out


# ------------------------------------------------------------------------ folder
def read_recbole(folder: str | Path, *, seed: int = 0, features: Sequence[str] | None = None) -> Dataset:
    """Read a RecBole dataset folder as implicit feedback, split per user 8:1:1 with ``seed``.

    Reads ``<folder name>.inter`` (or the folder's only ``.inter``), which
    needs ``user_id:token`` and ``item_id:token`` fields; ``timestamp:float``
    is kept when present; every other field (``rating``, ...) is ignored:
    every record is an interaction. Repeated (user, item) pairs keep their
    first record. Users and items are re-indexed as ``token_ids`` describes.
    The split is ``split_labels`` (MMRec's per-user rule) under ``seed``.

    features: ``.item`` fields to turn into modalities (see ``item_features``);
        default: every ``float_seq`` field of ``<name>.item`` if that file
        exists (pre-computed embeddings), none otherwise.
    """
    folder = existing_folder(folder)
    path = _main_file(folder, ".inter")
    table = read_atomic(path)
    users = table.require(USER_FIELD, ("token",))
    items = table.require(ITEM_FIELD, ("token",))
    if len(table) == 0:
        raise DataError("no interactions", path=path)
    user_ids, item_ids, kept, _, item_vocab = interaction_ids(users, items, source=path, rows=table.rows)
    times = None
    if TIME_FIELD in table.names:
        times = table.require(TIME_FIELD, ("float",))[kept]
        bad = np.flatnonzero(~np.isfinite(times))
        if bad.size:
            raise table.error(int(kept[bad[0]]), f"timestamp {times[bad[0]]} is not finite", field=TIME_FIELD)
    modalities: Mapping[str, np.ndarray] = {}
    item_path = path.with_suffix(".item")
    if item_path.exists() and (features is None or features):
        item_table = read_atomic(item_path)
        wanted = ([n for n, t in zip(item_table.names, item_table.types) if t == "float_seq"]
                  if features is None else list(features))
        if wanted:
            modalities = item_features(item_table, item_vocab, wanted)
    elif features:
        raise DataError(f"features {list(features)} were asked for but there is no {item_path.name}", path=folder)
    return Dataset.from_interactions(folder.name, user_ids, item_ids, n_items=int(item_vocab.size), timestamps=times,
                                     features=modalities, seed=seed, path=folder)


def _main_file(folder: Path, suffix: str) -> Path:
    preferred = folder / f"{folder.name}{suffix}"
    if preferred.exists():
        return preferred
    candidates = sorted(folder.glob(f"*{suffix}"))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataError(f"no {suffix} file", path=folder)
    raise DataError(f"several {suffix} files and none named {preferred.name}: {[c.name for c in candidates]}",
                    path=folder)
