"""Summary statistics of a Dataset (``mmdenoise data info``)."""
from __future__ import annotations

import json

import numpy as np

from .dataset import SPLITS, Dataset

#: Row chunks hold about this many float64 values (32 MiB), whatever the feature width.
_CHUNK_VALUES = 1 << 22


def mean_pairwise_cosine(x: np.ndarray, chunk_rows: int | None = None, *, include_self: bool = False,
                         normalized: bool = False) -> float:
    """Mean cosine similarity of the rows of ``x`` [I, d], exactly, in O(I·d), without the I×I matrix.

    With x̂_i the L2-normalised rows and s = Σ_i x̂_i, ‖s‖² = Σ_i Σ_j cos(i, j):
    the mean over all I² ordered pairs (``include_self``; DA-MRS's S̄ of
    Eq. 1) is ‖s‖² / I², the mean over pairs of distinct rows (the default;
    ``mmdenoise data info``) is (‖s‖² − n) / (I(I − 1)) with n the number of
    non-zero rows (the diagonal's sum). Rows are normalised and summed in
    float64 chunks, so memory maps stay lazy; zero rows count as cosine 0.
    normalized: the rows are already unit-norm (or zero) and are used as
        given, e.g. the float32 rows whose products DA-MRS thresholds, so
        the mean is that of exactly the matrix compared with it.
    Returns NaN when there are no pairs (I = 0, or I < 2 without ``include_self``).
    """
    n_rows, dim = x.shape
    if n_rows < (1 if include_self else 2):
        return float("nan")
    step = chunk_rows or max(1, _CHUNK_VALUES // max(dim, 1))
    total = np.zeros(dim, dtype=np.float64)
    n_nonzero = 0
    for start in range(0, n_rows, step):
        block = np.asarray(x[start:start + step], dtype=np.float64)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        if not normalized:
            block /= np.where(norms > 0, norms, 1.0)
        n_nonzero += int(np.count_nonzero(norms))
        total += block.sum(axis=0)
    if include_self:
        return float(total @ total) / n_rows ** 2
    return float((total @ total - n_nonzero) / (n_rows * (n_rows - 1.0)))


def dataset_info(dataset: Dataset) -> dict:
    """A JSON-serialisable summary of ``dataset``.

    Keys: ``name``, ``fingerprint``, ``path`` (str or None), ``users``,
    ``items``, ``interactions`` ({train, valid, test, total}: record counts),
    ``sparsity`` (1 − total / (users · items)), ``modalities`` (modality ->
    {``dim``, ``mean_cosine``}: mean pairwise cosine similarity of distinct
    items' feature rows), and ``noise``: None, or {``noisy_interactions``,
    ``noisy_fraction`` (of the training split), ``removed`` (training
    interactions dropped), ``noisy_items`` (modality -> count),
    ``noisy_item_fraction`` (modality -> fraction of items), ``spec``}.
    """
    counts = {s: len(dataset.split(s)) for s in SPLITS}
    counts["total"] = sum(counts.values())
    modalities = {m: {"dim": int(x.shape[1]), "mean_cosine": mean_pairwise_cosine(x)}
                  for m, x in dataset.features.items()}
    noise = None
    if dataset.noise is not None:
        truth = dataset.noise
        n_noisy = int(truth.noisy_interactions.sum())
        noisy_items = {m: int(mask.sum()) for m, mask in truth.noisy_features.items()}
        noise = {
            "noisy_interactions": n_noisy,
            "noisy_fraction": n_noisy / counts["train"],
            "removed": len(truth.removed),
            "noisy_items": noisy_items,
            "noisy_item_fraction": {m: k / dataset.n_items for m, k in noisy_items.items()},
            "spec": dict(truth.spec),
        }
    return {
        "name": dataset.name,
        "fingerprint": dataset.fingerprint,
        "path": None if dataset.path is None else str(dataset.path),
        "users": dataset.n_users,
        "items": dataset.n_items,
        "interactions": counts,
        "sparsity": 1.0 - counts["total"] / (dataset.n_users * dataset.n_items),
        "modalities": modalities,
        "noise": noise,
    }


def format_info(info: dict) -> str:
    """``dataset_info``'s summary as an aligned plain-text table (for the CLI)."""
    counts = info["interactions"]
    lines = _aligned([
        ("dataset", info["name"]),
        ("fingerprint", info["fingerprint"]),
        *([("path", info["path"])] if info.get("path") else []),
        ("users", f"{info['users']:,}"),
        ("items", f"{info['items']:,}"),
        ("interactions", f"{counts['total']:,}  (train {counts['train']:,} / valid {counts['valid']:,} "
                         f"/ test {counts['test']:,})"),
        ("sparsity", f"{100 * info['sparsity']:.3f}%"),
    ])
    noisy_items = (info["noise"] or {}).get("noisy_items", {})
    if info["modalities"]:
        rows = [("modality", "dim", "mean cosine", *(["noisy items"] if noisy_items else []))]
        for m, stats in info["modalities"].items():
            row = (m, str(stats["dim"]), _fmt_float(stats["mean_cosine"]))
            if noisy_items:
                k = noisy_items.get(m)
                row += ("-" if k is None else f"{k:,} ({100 * info['noise']['noisy_item_fraction'][m]:.2f}%)",)
            rows.append(row)
        lines += ["", *_table(rows, numeric={1, 2, 3})]
    else:
        lines += ["", "no item features"]
    noise = info["noise"]
    if noise is not None:
        lines += ["", "planted noise (ground truth)"]
        lines += ["  " + line for line in _aligned([
            ("noisy interactions", f"{noise['noisy_interactions']:,}  ({100 * noise['noisy_fraction']:.2f}% "
                                   "of train)"),
            ("removed interactions", f"{noise['removed']:,}"),
            ("spec", json.dumps(noise["spec"], sort_keys=True, default=str) if noise["spec"] else "-"),
        ])]
    return "\n".join(lines)


def _fmt_float(v: float) -> str:
    return "n/a" if v != v else f"{v:.4f}"


def _aligned(pairs: list[tuple[str, str]]) -> list[str]:
    width = max(len(k) for k, _ in pairs)
    return [f"{k:<{width}}  {v}" for k, v in pairs]


def _table(rows: list[tuple[str, ...]], numeric: set[int]) -> list[str]:
    """Columns padded to their widest cell; columns in ``numeric`` right-aligned (header included)."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if c in numeric else cell.ljust(w)
                      for c, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
