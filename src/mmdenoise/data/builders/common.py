"""What every builder shares: the build cache and the atomic write of a built folder.

A built folder is an MMRec folder (``write_mmrec``) plus ``build.json``: the
parameters it was built with (checked when the folder is reused), where the
data came from and a few counts. Both appear together or not at all.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from ...errors import DataError
from ...io import atomic_dir, write_json
from ..dataset import Dataset
from ..mmrec import is_mmrec_folder, write_mmrec

BUILD_FILE = "build.json"


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
                inter_name: str) -> Path:
    """Write ``dataset`` to ``out`` in the MMRec layout with ``build.json``, atomically (replacing ``out``).

    ``inter_name`` names the ``.inter`` file; ``info`` (source, counts) is
    recorded beside ``params`` together with the dataset's fingerprint.
    """
    with atomic_dir(out, overwrite=True) as tmp:
        write_mmrec(dataset, tmp, overwrite=True, name=inter_name)
        write_json(tmp / BUILD_FILE, {"params": dict(params), **dict(info),
                                      "fingerprint": dataset.fingerprint})
    return out
