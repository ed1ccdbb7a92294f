"""The MMRec folder layout: read and write.

A folder holds ``<name>.inter`` (tab-separated, header with ``userID``,
``itemID``, ``x_label`` and optionally ``rating`` / ``timestamp``; 0-based
ids; x_label 0 train, 1 valid, 2 test) and one ``<modality>_feat.npy`` per
modality (row i = item i). mmdenoise adds two optional files that other tools
ignore: ``noise.json`` + ``noise_mask.npz`` (planted-noise ground truth) and
``mmdenoise.json`` (name and exact user/item counts).

Error messages name the file, the row and the field. A row number is the line
number in the file minus one: the header is row 0, the first record row 1.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np

from ..errors import DataError, FeatureError, short
from ..io import atomic_dir, save_npy, save_npz, write_json
from .dataset import SPLITS, Dataset, Interactions, NoiseTruth

FEATURE_SUFFIX = "_feat.npy"
NPY_MAGIC = b"\x93NUMPY"
REQUIRED_COLUMNS = ("userID", "itemID", "x_label")
META_FILE = "mmdenoise.json"
NOISE_FILE = "noise.json"
NOISE_MASK_FILE = "noise_mask.npz"

#: Without mmdenoise.json the user (item) count is inferred as max id + 1; an id
#: beyond both this and the number of rows means ids were never re-indexed (or
#: a typo), and would make every per-user array absurdly large.
SPARSE_ID_LIMIT = 1 << 24


def existing_folder(folder: str | Path) -> Path:
    """``folder`` as a Path; DataError "not a folder" unless it is an existing directory."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("not a folder", path=folder)
    return folder


def is_mmrec_folder(path: Path) -> bool:
    """Whether ``path``'s ``.inter`` file is meant as MMRec's: every header field but RecBole's
    ``name:type`` ones. A header without ``x_label``, an empty file or a comma-separated one is
    read as MMRec, so that the error names what is wrong with it (not RecBole's header rules)."""
    inter = _find_inter_file(path, required=False)
    if inter is None:
        return False
    with open(inter, encoding="utf-8", errors="replace") as f:
        header = f.readline().rstrip("\r\n").split("\t")
    return "x_label" in header or not any(":" in name for name in header)


def _find_inter_file(folder: Path, required: bool = True) -> Path | None:
    candidates = sorted(folder.glob("*.inter"))
    if not candidates:
        if required:
            raise DataError("no *.inter file found (MMRec layout needs <name>.inter)", path=folder)
        return None
    preferred = folder / f"{folder.name}.inter"
    if preferred in candidates:
        return preferred
    if len(candidates) > 1 and required:
        raise DataError(f"several .inter files and none named {folder.name}.inter: "
                        f"{[c.name for c in candidates]}", path=folder)
    return candidates[0]


# ----------------------------------------------------------------------------- tables
@dataclass(frozen=True, eq=False)
class Table:
    """A tab-separated numeric table with a header row, parsed.

    values: float64 [n_rows, n_cols], one row per non-blank line.
    rows: int64 [n_rows], each record's row number in the file (line number
        minus one), so that errors found after parsing still point at the
        right line when the file has blank lines.
    """

    path: Path
    header: list[str]
    values: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def column(self, name: str) -> np.ndarray:
        """float64 [n_rows]."""
        return self.values[:, self.header.index(name)]

    def integer_column(self, name: str) -> np.ndarray:
        """A column of non-negative integers (ids, labels) as int64 [n_rows]; DataError otherwise."""
        col = self.column(name)
        bad = np.flatnonzero(~np.isfinite(col) | (col != np.floor(col)) | (col < 0) | (col >= 2.0 ** 53))
        if bad.size:
            raise self.error(int(bad[0]), f"expected a non-negative integer, got {_fmt_number(col[bad[0]])}",
                             field=name)
        return col.astype(np.int64)

    def error(self, index: int, problem: str, field: str | None = None) -> DataError:
        """A DataError for record ``index`` (0-based position in ``values``), naming its file row."""
        return DataError(problem, path=self.path, row=int(self.rows[index]), field=field)


def read_table(path: Path, columns: Mapping[str, str] | tuple[str, ...] = ()) -> Table:
    """Parse a tab-separated numeric table whose first line is a header.

    ``columns``: names the header must contain. Parsing runs in numpy's C
    reader; a slow line-by-line scan runs only to locate an error, which is
    reported as a DataError naming the file, row and field. Blank lines are
    skipped (as pandas, which MMRec uses, skips them); a line of spaces is not
    blank. ``\\r\\n`` line ends are accepted.
    """
    path = Path(path)
    raw = path.read_bytes()
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start)
        raise DataError(f"not UTF-8 text (byte {exc.start})", path=path, row=line) from None
    head, _, body = text.partition("\n")
    if not head.strip() and not body.strip():
        raise DataError(f"empty file; expected a tab-separated header ({', '.join(columns)}) and one row "
                        "per interaction", path=path)
    header = head.split("\t")
    if len(header) == 1 and "," in head:
        raise DataError(f"the header {short(head)} is comma-separated; fields must be separated by tabs",
                        path=path, row=0)
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"header {short(header)} lacks column(s) {missing}", path=path, row=0)
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise DataError(f"header repeats column(s) {dupes}", path=path, row=0)
    n_cols = len(header)
    rows = _record_rows(body)
    if rows.size == 0:
        return Table(path, header, np.empty((0, n_cols)), rows)
    try:
        values = np.loadtxt(io.StringIO(body), delimiter="\t", comments=None, quotechar=None,
                            dtype=np.float64, ndmin=2)
    except ValueError:
        values = None
    if values is None or values.shape != (rows.size, n_cols):
        _locate_bad_row(path, header, body)
    return Table(path, header, values, rows)


def _record_rows(body: str) -> np.ndarray:
    """File row number (line − 1) of every non-blank line of ``body`` (the text after the header).

    Without blank lines (the usual case) that is 1..n; otherwise the line
    lengths are computed on the bytes, vectorised.
    """
    n_lines = body.count("\n") + (0 if body.endswith("\n") or not body else 1)
    if "\n\n" not in body and not body.startswith("\n"):
        return np.arange(1, n_lines + 1, dtype=np.int64)
    b = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
    ends = np.flatnonzero(b == ord("\n"))
    if b.size and b[-1] != ord("\n"):
        ends = np.append(ends, b.size)
    starts = np.r_[0, ends[:-1] + 1]
    return np.flatnonzero(ends > starts).astype(np.int64) + 1


def _locate_bad_row(path: Path, header: list[str], body: str) -> None:
    """Find the first malformed record and raise a DataError for it (error path only)."""
    for row, line in enumerate(body.split("\n"), start=1):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise DataError(f"expected {len(header)} tab-separated fields, got {len(fields)}: {shown!r}",
                            path=path, row=row)
        for name, value in zip(header, fields):
            try:
                if "_" in value:  # float() accepts "1_000"; numpy's reader does not
                    raise ValueError
                float(value)
            except ValueError:
                raise DataError(f"not a number: {value!r}", path=path, row=row, field=name) from None
    raise DataError("could not parse the table", path=path)


def _fmt_number(v: float) -> str:
    return str(int(v)) if np.isfinite(v) and v == np.floor(v) and abs(v) < 2.0 ** 63 else repr(float(v))


def _check_id_bound(ids: np.ndarray, bound: int, table: Table, name: str) -> None:
    bad = np.flatnonzero(ids >= bound)
    if bad.size:
        raise table.error(int(bad[0]), f"id {ids[bad[0]]} out of range [0, {bound})", field=name)


def _inferred_count(ids: np.ndarray, table: Table, name: str) -> int:
    """max id + 1, refusing ids so sparse that they cannot have been re-indexed."""
    if ids.size == 0:
        return 0
    top = int(np.argmax(ids))
    count = int(ids[top]) + 1
    if count > max(len(table), SPARSE_ID_LIMIT):
        raise table.error(top, f"id {ids[top]} implies {count} ids but the file has {len(table)} rows; "
                               "ids must be 0-based and dense (re-index them)", field=name)
    return count


# --------------------------------------------------------------------------- features
def read_feature_files(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Path]]:
    """Every ``<modality>_feat.npy`` in ``folder``, opened as a read-only memory map.

    Returns (modality -> array [rows, d], modality -> file), in file-name
    order. Loaded with ``allow_pickle=False``: an object array is refused
    without being unpickled. Row count and contents are checked by the
    Dataset (see ``feature_errors_name_files``).
    """
    features, files = {}, {}
    for feat_path in sorted(folder.glob(f"*{FEATURE_SUFFIX}")):
        modality = feat_path.name[: -len(FEATURE_SUFFIX)]
        with open(feat_path, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
        if magic != NPY_MAGIC:
            kind = ("a Python pickle (refused unopened: data never runs code)" if magic[:1] == b"\x80"
                    else "empty" if not magic else "not a .npy array (text or CSV? save it with numpy.save)")
            raise FeatureError(f"cannot read feature array: the file is {kind}", path=feat_path, field=modality)
        try:
            x = np.load(feat_path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            problem = ("an array of Python objects (refused unopened: data never runs code)"
                       if "pickle" in str(exc) or "Python objects" in str(exc)
                       else f"truncated or damaged ({type(exc).__name__})")
            raise FeatureError(f"cannot read feature array: {problem}", path=feat_path, field=modality) from None
        if not isinstance(x, np.ndarray) or x.ndim != 2:
            shape = getattr(x, "shape", None)
            raise FeatureError(f"features must be 2-D [n_items, d], got shape {shape}",
                               path=feat_path, field=modality)
        features[modality], files[modality] = x, feat_path
    return features, files


def check_feature_rows(features: Mapping[str, np.ndarray], files: Mapping[str, Path], n_items: int) -> None:
    """FeatureError naming the ``.npy`` file of the first modality whose row count is not ``n_items``."""
    for modality, x in features.items():
        if x.shape[0] != n_items:
            raise FeatureError(f"feature row count {x.shape[0]} != n_items {n_items}",
                               path=files[modality], field=modality)


@contextlib.contextmanager
def feature_errors_name_files(files: Mapping[str, Path]) -> Iterator[None]:
    """Re-raise a Dataset's FeatureError naming the file the modality was read from.

    The Dataset checks its features (NaN/inf, all-zero rows, row count) but
    knows modalities, not files; a reader wraps the Dataset construction in
    this so the message points at ``<modality>_feat.npy`` and the item row.
    """
    try:
        yield
    except FeatureError as exc:
        if exc.field in files and exc.path != files[exc.field]:
            raise FeatureError(exc.problem, path=files[exc.field], row=exc.row, field=exc.field) from None
        raise


# ------------------------------------------------------------------------------ read
def read_mmrec(folder: str | Path, name: str | None = None) -> Dataset:
    """Read a dataset folder in the MMRec layout.

    Without ``mmdenoise.json`` (a folder written by MMRec or by hand) the
    user count is max userID + 1 and the item count is the feature row count
    (max itemID + 1 when there are no features). Interactions keep file order
    within each split. Raises DataError naming file, row and field for bad
    input.
    """
    folder = existing_folder(folder)
    inter_path = _find_inter_file(folder)
    table = read_table(inter_path, REQUIRED_COLUMNS)
    users = table.integer_column("userID")
    items = table.integer_column("itemID")
    labels = table.integer_column("x_label")
    bad = np.flatnonzero(labels > 2)
    if bad.size:
        raise table.error(int(bad[0]), f"x_label must be 0 (train), 1 (valid) or 2 (test), got {labels[bad[0]]}",
                          field="x_label")
    timestamps = None
    if "timestamp" in table.header:
        timestamps = table.column("timestamp")
        bad = np.flatnonzero(~np.isfinite(timestamps))
        if bad.size:
            raise table.error(int(bad[0]), f"timestamp {timestamps[bad[0]]} is not finite", field="timestamp")

    features, feature_files = read_feature_files(folder)
    meta = _read_meta(folder / META_FILE) if (folder / META_FILE).exists() else {}
    n_users = meta["n_users"] if "n_users" in meta else _inferred_count(users, table, "userID")
    if "n_items" in meta:
        n_items = meta["n_items"]
    elif features:
        counts = {m: x.shape[0] for m, x in features.items()}
        if len(set(counts.values())) > 1:  # which one is wrong cannot be told without mmdenoise.json
            shown = ", ".join(f"{feature_files[m].name} has {n}" for m, n in counts.items())
            raise DataError(f"the feature files disagree on the number of items ({shown} rows); fix the "
                            f"wrong one, or give n_items in {META_FILE}", path=folder)
        n_items = next(iter(counts.values()))
    else:
        n_items = _inferred_count(items, table, "itemID")
    check_feature_rows(features, feature_files, n_items)
    _check_id_bound(users, n_users, table, "userID")
    _check_id_bound(items, n_items, table, "itemID")

    for label, split in enumerate(SPLITS):
        if not np.any(labels == label):
            raise DataError(f"no rows with x_label={label} (the {split} split is empty)",
                            path=inter_path, field="x_label")
    has_train = np.zeros(n_users, dtype=bool)
    has_train[users[labels == 0]] = True
    orphan = np.flatnonzero(~has_train[users])
    if orphan.size:
        k = int(orphan[0])
        raise table.error(k, f"user {users[k]} has {SPLITS[labels[k]]} interactions (x_label={labels[k]}) "
                             "but no training rows (x_label=0)", field="userID")

    keep = first_occurrences(users, items, labels, n_items, inter_path, lambda i: f"row {table.rows[i]}")
    users, items, labels = users[keep], items[keep], labels[keep]
    timestamps = None if timestamps is None else timestamps[keep]
    splits = {}
    for label, split in enumerate(SPLITS):
        mask = labels == label
        splits[split] = Interactions(users[mask], items[mask], None if timestamps is None else timestamps[mask])
    noise = None
    if (folder / NOISE_FILE).exists():
        noise = _read_noise(folder, n_train=len(splits["train"]), n_items=n_items, modalities=list(features))
    with feature_errors_name_files(feature_files):
        return Dataset(name=name or meta.get("name", folder.name), n_users=n_users, n_items=n_items,
                       features=features, noise=noise, path=folder, **splits)


def first_occurrences(users: np.ndarray, items: np.ndarray, labels: np.ndarray, n_items: int,
                      source: Path, where: Callable[[int], str]) -> np.ndarray:
    """Positions of the rows to keep so that each (user, item) pair appears once, in one split.

    Implicit feedback has one interaction per pair: a repeated row would count
    twice in training, and a pair held out in valid/test that is also a
    training pair cannot be ranked (training items are masked), so it only
    lowers the metrics. Kept: the first row of a pair in split order (train,
    then valid, then test; file order within a split); the dropped rows are
    reported in one warning naming ``source`` and the first of them (``where``:
    record i as its file says it, e.g. "row 12"). labels: int [n], the split of
    each record (0 train, 1 valid, 2 test). Returns int64 positions, ascending
    (input order); a DataError naming ``source`` when that would empty a split.
    """
    order = np.lexsort((np.arange(users.size), labels))          # split order, then file order
    keys = users[order] * np.int64(max(n_items, 1)) + items[order]
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if first.size == users.size:
        return np.arange(users.size)
    emptied = np.setdiff1d(labels, labels[order[first]])
    if emptied.size:
        raise DataError(f"every interaction of the {SPLITS[emptied[0]]} split repeats a (user, item) pair of an "
                        "earlier split; a pair is kept once, in its first split, so the split would be empty",
                        path=source)
    kept_at = first[inverse]                                      # ordered position of each row's kept row
    dropped = np.flatnonzero(kept_at != np.arange(users.size))
    across = int(np.count_nonzero(labels[order][dropped] != labels[order][kept_at[dropped]]))
    shown = order[dropped].min()
    logging.getLogger("mmdenoise").warning(
        "%s: %d repeated (user, item) row(s) dropped, %d of them a pair already in an earlier split "
        "(first: %s, user %d, item %d); each pair is kept once, in its first split",
        source, dropped.size, across, where(int(shown)), users[shown], items[shown])
    return np.sort(order[first])


def read_json(path: Path, object_pairs_hook=None):
    """The JSON value in ``path`` (UTF-8); DataError naming the file, and the line and column where
    it can, for text that is not UTF-8 or not JSON. ``object_pairs_hook`` as for ``json.load``."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=object_pairs_hook)
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                        path=path) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text (byte {exc.start})", path=path) from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of thousands of digits
        raise DataError(f"cannot parse JSON: {exc}", path=path) from None


def _read_meta(path: Path) -> dict:
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise DataError(f"expected a JSON object, got {type(meta).__name__}", path=path)
    for key in ("n_users", "n_items"):
        if key in meta and not (type(meta[key]) is int and meta[key] > 0):
            raise DataError(f"must be a positive integer, got {meta[key]!r}", path=path, field=key)
    if "name" in meta and not isinstance(meta["name"], str):
        raise DataError(f"must be a string, got {meta['name']!r}", path=path, field="name")
    return meta


def _read_noise(folder: Path, *, n_train: int | None = None, n_items: int | None = None,
                modalities: list[str] | None = None) -> NoiseTruth:
    """noise.json + noise_mask.npz; the optional sizes are checked here so errors name the file."""
    spec = read_json(folder / NOISE_FILE)
    if not isinstance(spec, dict):
        raise DataError(f"expected a JSON object, got {type(spec).__name__}", path=folder / NOISE_FILE)
    mask_path = folder / NOISE_MASK_FILE
    if not mask_path.exists():
        raise DataError(f"{NOISE_FILE} is present but {NOISE_MASK_FILE} is missing", path=folder)
    try:
        with np.load(mask_path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read noise masks: {exc}", path=mask_path) from None
    if "interactions" not in arrays:
        raise DataError("lacks the 'interactions' array", path=mask_path)
    features = {k[len("features_"):]: v for k, v in arrays.items() if k.startswith("features_")}
    if n_train is not None and arrays["interactions"].size != n_train:
        raise DataError(f"{arrays['interactions'].size} entries for {n_train} training interactions",
                        path=mask_path, field="interactions")
    for m, mask in features.items():
        if modalities is not None and m not in modalities:
            raise DataError(f"mask for unknown modality {m!r}; modalities: {sorted(modalities)}",
                            path=mask_path, field=f"features_{m}")
        if n_items is not None and mask.size != n_items:
            raise DataError(f"{mask.size} entries for {n_items} items", path=mask_path, field=f"features_{m}")
    removed = Interactions(arrays.get("removed_users", np.zeros(0, np.int64)),
                           arrays.get("removed_items", np.zeros(0, np.int64)),
                           arrays.get("removed_timestamps"))
    return NoiseTruth(arrays["interactions"], features, removed, spec)


# ----------------------------------------------------------------------------- write
def write_mmrec(dataset: Dataset, folder: str | Path, *, overwrite: bool = False,
                name: str | None = None) -> Path:
    """Write ``dataset`` as an MMRec folder (atomically: all files or none).

    Rows are written train, valid, test in array order, so reading the folder
    back gives identical arrays (timestamps are written as integers when
    integral, else as the shortest exact decimal). Timestamps are written only
    when every split has them. ``name`` names the ``.inter`` file (default:
    the folder's name). Returns the folder. Raises FileExistsError when the
    folder exists and ``overwrite`` is false; an existing folder is replaced
    only once the new one is complete.
    """
    folder = Path(folder)
    name = name or folder.name
    for part in [name, *dataset.features]:
        if not part or part in (".", "..") or any(c in part for c in "/\\\0"):
            raise DataError(f"{part!r} cannot be part of a file name", path=folder)
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        parts = [dataset.split(s) for s in SPLITS]
        with_ts = all(p.timestamps is not None for p in parts)
        columns = [np.concatenate([p.users for p in parts]), np.concatenate([p.items for p in parts])]
        header = ["userID", "itemID"]
        if with_ts:
            header.append("timestamp")
        header.append("x_label")
        labels = np.concatenate([np.full(len(p), k, dtype=np.int64) for k, p in enumerate(parts)])
        with open(tmp / f"{name}.inter", "w", encoding="utf-8") as f:
            f.write("\t".join(header) + "\n")
            if with_ts:
                ts = np.concatenate([p.timestamps for p in parts])
                rows = zip(columns[0].tolist(), columns[1].tolist(), ts.tolist(), labels.tolist())
                f.writelines(f"{u}\t{i}\t{_fmt_time(t)}\t{x}\n" for u, i, t, x in rows)
            else:
                rows = zip(columns[0].tolist(), columns[1].tolist(), labels.tolist())
                f.writelines(f"{u}\t{i}\t{x}\n" for u, i, x in rows)
        for modality, x in dataset.features.items():
            _save_features(tmp / f"{modality}{FEATURE_SUFFIX}", x)
        write_json(tmp / META_FILE, {"name": dataset.name, "n_users": dataset.n_users,
                                     "n_items": dataset.n_items})
        if dataset.noise is not None:
            write_noise(tmp, dataset.noise)
    return folder


def write_noise(folder: Path, noise: NoiseTruth) -> None:
    """noise.json (the spec) + noise_mask.npz (masks; removed pairs with their timestamps if any)."""
    removed_ts = {} if noise.removed.timestamps is None else {"removed_timestamps": noise.removed.timestamps}
    write_json(folder / NOISE_FILE, dict(noise.spec))
    save_npz(folder / NOISE_MASK_FILE, interactions=noise.noisy_interactions,
             removed_users=noise.removed.users, removed_items=noise.removed.items, **removed_ts,
             **{f"features_{m}": v for m, v in noise.noisy_features.items()})


def _fmt_time(t: float) -> str:
    """Integral timestamps as integers (as MMRec writes them), others as the shortest exact decimal."""
    if t.is_integer() and abs(t) < 2.0 ** 53 and (t != 0 or math.copysign(1.0, t) > 0):
        return str(int(t))
    return repr(t)


def _save_features(path: Path, x: np.ndarray, chunk_rows: int = 4096) -> None:
    """Write a float32 feature matrix in row chunks (works for memory maps too)."""
    if not isinstance(x, np.memmap):
        save_npy(path, np.asarray(x, dtype=np.float32))
        return
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=x.shape)
    for start in range(0, x.shape[0], chunk_rows):
        out[start:start + chunk_rows] = x[start:start + chunk_rows]
    out.flush()
    del out
