"""Error types that carry the place of a problem (file, row, field) in their message."""
from __future__ import annotations

import difflib
import errno
import reprlib
from pathlib import Path
from typing import Iterable


def short(value: object) -> str:
    """``repr(value)`` cut to about 80 characters and 3 levels, so that an error message naming a value
    stays one short line whatever the user passed."""
    return _SHORT.repr(value)


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 3, 60, 60, 40
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = _SHORT.maxset = 6


def did_you_mean(name: object, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the name in ``valid`` closest to ``name``, or ``""`` when none is close
    (difflib's ratio below 0.75), for the error that lists the valid names after it. A dotted valid name
    also matches on its last part: ``n_layer`` finds ``model_params.n_layers``.

    >>> did_you_mean("lightgnc", ["mf", "lightgcn"]), did_you_mean("n_layer", ["seed", "model_params.n_layers"])
    (" (did you mean 'lightgcn'?)", " (did you mean 'model_params.n_layers'?)")
    """
    if not isinstance(name, str):
        return ""
    names: dict[str, str] = {}
    for full in valid:
        names.setdefault(full, full)
        names.setdefault(full.rsplit(".", 1)[-1], full)
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)
    return f" (did you mean {names[close[0]]!r}?)" if close else ""


class MMDenoiseError(Exception):
    """Base class of every error mmdenoise raises on purpose."""


class DataError(MMDenoiseError, ValueError):
    """Bad input data: names the file, the row or field, and the problem.

    >>> str(DataError("bad id", path="x.inter", row=3, field="itemID"))
    'x.inter: row 3, field itemID: bad id'
    """

    def __init__(self, problem: str, *, path: str | Path | None = None,
                 row: int | None = None, field: str | None = None):
        self.problem, self.path, self.row, self.field = problem, path, row, field
        where = [str(path)] if path is not None else []
        detail = []
        if row is not None:
            detail.append(f"row {row}")
        if field is not None:
            detail.append(f"field {field}")
        prefix = ": ".join(where + ([", ".join(detail)] if detail else []))
        super().__init__(f"{prefix}: {problem}" if prefix else problem)


class FeatureError(DataError):
    """Bad item features; ``field`` names the modality and ``row`` the item.

    Raised by the Dataset's own checks, which know the modality but not the
    file; a reader catches it and re-raises it naming the feature file.
    """


class ConfigError(MMDenoiseError, ValueError):
    """Unknown names, unknown keys or wrong types in a configuration."""


class TrainingError(MMDenoiseError, RuntimeError):
    """Training cannot go on (for example a NaN loss); the message names where."""


class RunError(MMDenoiseError, RuntimeError):
    """A run folder cannot be used as asked: it holds another run or a dataset, a resume does not
    match it, or one of its files (checkpoint, result) is missing or damaged."""


class StorageError(MMDenoiseError, OSError):
    """The operating system refused a read or write (full disk, file size limit, permissions);
    the message names the file and says what was kept."""


def describe_os_error(exc: OSError) -> str:
    """One line for an OSError: the file, the system's reason and, for a full disk, what to do."""
    where = exc.filename if exc.filename is not None else None
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        reason += " (free some space or raise the file size limit, then run the command again)"
    return f"{where}: {reason}" if where is not None else reason
