"""The one on-disk cache of built graphs, keyed on the dataset fingerprint, the parameters and a version.

A cached entry is a set of named sparse matrices (one graph, or one per
modality when they are built together, as DA-MRS's DIIG) in one ``.npz``
under ``<data home>/cache/graphs`` (or ``cache_dir``), named
``<kind>-<hash>.npz``; the hash covers the kind, the fingerprint, every
parameter, the builder's version and the file layout. Files are written
atomically, so a crash never leaves a half-written graph that a later run
would read.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import scipy.sparse as sp

from ..io import data_home, save_npz

#: version of the file layout below (names, then data/indices/indptr/shape per graph)
LAYOUT = 2


def cache_path(kind: str, fingerprint: str, params: dict, version: int, cache_dir: Path | None = None) -> Path:
    """Where the graphs of ``kind`` built from these inputs are stored (the file may not exist)."""
    key = {"kind": kind, "fingerprint": fingerprint, "params": params, "version": version, "layout": LAYOUT}
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=8).hexdigest()
    return (cache_dir or data_home() / "cache" / "graphs") / f"{kind}-{digest}.npz"


def cached_graphs(kind: str, fingerprint: str, params: dict, build: Callable[[], Mapping[str, sp.spmatrix]], *,
                  version: int, cache_dir: Path | None = None) -> dict[str, sp.csr_matrix]:
    """``build()`` (named sparse matrices) read from the cache, or built once and stored there.

    kind: what is built (a file-name prefix, e.g. ``knn-text``); fingerprint:
    the dataset's content hash; params: every other input that determines
    the graphs, JSON-serialisable; version: the builder's version, raised
    whenever its output for the same inputs changes. Returns {name: CSR} in
    the order ``build`` gave them, with the dtypes it built.
    """
    path = cache_path(kind, fingerprint, params, version, cache_dir)
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {str(name): sp.csr_matrix((z[f"data_{j}"], z[f"indices_{j}"], z[f"indptr_{j}"]),
                                             shape=tuple(z[f"shape_{j}"]))
                    for j, name in enumerate(z["names"])}
    graphs = {name: sp.csr_matrix(g) for name, g in build().items()}
    arrays = {"names": np.array(list(graphs), dtype=str)}
    for j, g in enumerate(graphs.values()):
        arrays.update({f"data_{j}": g.data, f"indices_{j}": g.indices, f"indptr_{j}": g.indptr,
                       f"shape_{j}": np.array(g.shape)})
    save_npz(path, **arrays)
    return graphs
