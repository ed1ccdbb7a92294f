"""The MMRec folder layout (DESIGN §3.1): read and write.

A folder holds ``<name>.inter`` (tab-separated, header with ``userID``,
``itemID``, ``x_label`` and optionally ``rating`` / ``timestamp``; 0-based
ids; x_label 0 train, 1 valid, 2 test) and one ``<modality>_feat.npy`` per
modality (row i = item i). mmdenoise adds two optional files that other tools
ignore: ``noise.json`` + ``noise_mask.npz`` (planted-noise ground truth) and
``mmdenoise.json`` (name and exact user/item counts).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_dir, save_npy, save_npz, write_json
from .dataset import SPLITS, Dataset, Interactions, NoiseTruth

FEATURE_SUFFIX = "_feat.npy"
REQUIRED_COLUMNS = ("userID", "itemID", "x_label")
META_FILE = "mmdenoise.json"
NOISE_FILE = "noise.json"
NOISE_MASK_FILE = "noise_mask.npz"


def is_mmrec_folder(path: Path) -> bool:
    inter = _find_inter_file(path, required=False)
    if inter is None:
        return False
    with open(inter, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
    return "x_label" in header


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


def parse_table(path: Path, columns: dict[str, str]) -> tuple[list[str], np.ndarray]:
    """Parse a tab-separated numeric table with a header row into float64 [rows, cols].

    ``columns`` maps a required column name to the description used in errors.
    Rows are numbered from 1 after the header in error messages (the line
    number in the file minus one). Parsing is vectorised; the slow per-line
    scan only runs to locate an error.
    """
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
        body = f.read()
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(f"header {header} lacks column(s) {missing}", path=path, row=0)
    n_cols = len(header)
    tokens = body.split()
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        values = None
    lines = body.splitlines()
    n_rows = sum(1 for line in lines if line.strip())
    if values is None or values.size != n_rows * n_cols:
        _locate_bad_row(path, header, lines)
    table = values.reshape(n_rows, n_cols)
    return header, table


def _locate_bad_row(path: Path, header: list[str], lines: list[str]) -> None:
    row = 0
    for line in lines:
        if not line.strip():
            continue
        row += 1
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != len(header):
            raise DataError(f"expected {len(header)} tab-separated fields, got {len(fields)}: {line!r}",
                            path=path, row=row)
        for name, value in zip(header, fields):
            try:
                float(value)
            except ValueError:
                raise DataError(f"not a number: {value!r}", path=path, row=row, field=name) from None
    raise DataError("could not parse the table", path=path)


def _integer_column(path: Path, header: list[str], table: np.ndarray, name: str) -> np.ndarray:
    col = table[:, header.index(name)]
    bad = np.flatnonzero((col != np.floor(col)) | (col < 0) | ~np.isfinite(col))
    if bad.size:
        raise DataError(f"expected a non-negative integer, got {col[bad[0]]!r}",
                        path=path, row=int(bad[0]) + 1, field=name)
    return col.astype(np.int64)


def read_mmrec(folder: str | Path, name: str | None = None) -> Dataset:
    """Read a dataset folder in the MMRec layout."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("not a folder", path=folder)
    inter_path = _find_inter_file(folder)
    header, table = parse_table(inter_path, {c: c for c in REQUIRED_COLUMNS})
    users = _integer_column(inter_path, header, table, "userID")
    items = _integer_column(inter_path, header, table, "itemID")
    labels = _integer_column(inter_path, header, table, "x_label")
    bad = np.flatnonzero(labels > 2)
    if bad.size:
        raise DataError(f"x_label must be 0 (train), 1 (valid) or 2 (test), got {labels[bad[0]]}",
                        path=inter_path, row=int(bad[0]) + 1, field="x_label")
    timestamps = table[:, header.index("timestamp")] if "timestamp" in header else None

    features = {}
    for feat_path in sorted(folder.glob(f"*{FEATURE_SUFFIX}")):
        modality = feat_path.name[: -len(FEATURE_SUFFIX)]
        try:
            features[modality] = np.load(feat_path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"cannot read feature array: {exc}", path=feat_path) from None
        if features[modality].ndim != 2:
            raise DataError(f"features must be 2-D [n_items, d], got shape {features[modality].shape}",
                            path=feat_path)

    meta = _read_json(folder / META_FILE) if (folder / META_FILE).exists() else {}
    n_users = int(meta.get("n_users", users.max() + 1 if users.size else 0))
    n_items = int(meta.get("n_items", items.max() + 1 if items.size else 0))
    if features and "n_items" not in meta:
        rows = {m: x.shape[0] for m, x in features.items()}
        n_items = max(rows.values())
    for modality, x in features.items():
        if x.shape[0] != n_items:
            raise DataError(f"feature row count {x.shape[0]} != n_items {n_items}",
                            path=folder / f"{modality}{FEATURE_SUFFIX}")
    for fld, ids, bound in (("userID", users, n_users), ("itemID", items, n_items)):
        bad = np.flatnonzero(ids >= bound)
        if bad.size:
            raise DataError(f"id {ids[bad[0]]} out of range [0, {bound})",
                            path=inter_path, row=int(bad[0]) + 1, field=fld)

    splits = {}
    for label, split in enumerate(SPLITS):
        mask = labels == label
        if not mask.any():
            raise DataError(f"no rows with x_label={label} ({split} split is empty)", path=inter_path)
        splits[split] = Interactions(users[mask], items[mask],
                                     None if timestamps is None else timestamps[mask])
    noise = _read_noise(folder) if (folder / NOISE_FILE).exists() else None
    return Dataset(name=name or meta.get("name", folder.name), n_users=n_users, n_items=n_items,
                   features=features, noise=noise, path=folder, **splits)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"invalid JSON: {exc}", path=path) from None


def _read_noise(folder: Path) -> NoiseTruth:
    spec = _read_json(folder / NOISE_FILE)
    mask_path = folder / NOISE_MASK_FILE
    if not mask_path.exists():
        raise DataError(f"{NOISE_FILE} is present but {NOISE_MASK_FILE} is missing", path=folder)
    with np.load(mask_path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if "interactions" not in arrays:
        raise DataError("lacks the 'interactions' array", path=mask_path)
    features = {k[len("features_"):]: v for k, v in arrays.items() if k.startswith("features_")}
    removed = Interactions(arrays.get("removed_users", np.zeros(0)), arrays.get("removed_items", np.zeros(0)))
    return NoiseTruth(arrays["interactions"], features, removed, spec)


def write_mmrec(dataset: Dataset, folder: str | Path, *, overwrite: bool = False,
                name: str | None = None) -> Path:
    """Write ``dataset`` as an MMRec folder (atomically: all files or none).

    Rows are written train, valid, test in array order, so reading the folder
    back gives identical arrays. Returns the folder.
    """
    folder = Path(folder)
    name = name or folder.name
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
    write_json(folder / NOISE_FILE, dict(noise.spec))
    save_npz(folder / NOISE_MASK_FILE, interactions=noise.noisy_interactions,
             removed_users=noise.removed.users, removed_items=noise.removed.items,
             **{f"features_{m}": v for m, v in noise.noisy_features.items()})


def _fmt_time(t: float) -> str:
    return str(int(t)) if t == int(t) else repr(t)


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
