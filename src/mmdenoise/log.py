"""Logging: every module logs to a child of the ``mmdenoise`` logger; the library is silent by default.

The package root holds a ``NullHandler``, so ``import mmdenoise`` prints nothing
until the application configures logging (``logging.basicConfig(level="INFO")``
shows the progress lines). The CLI calls :func:`configure`: INFO lines on
stderr by default, warnings only with ``--quiet``, debug lines with ``--verbose``.
Lines go through ``tqdm.write`` so they never break a progress bar on a terminal.
"""
from __future__ import annotations

import logging
import sys

ROOT = "mmdenoise"


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (``__name__``), a child of ``mmdenoise``."""
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


class _TqdmHandler(logging.Handler):
    """Writes each record to the current ``sys.stderr``, on its own line above any active tqdm bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm
            tqdm.write(self.format(record), file=sys.stderr)
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure(verbosity: int = 0) -> None:
    """Show mmdenoise's log lines on stderr: -1 warnings only, 0 progress (INFO), 1 debug.

    Replaces a handler installed by an earlier call (tests call it repeatedly).
    """
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, _TqdmHandler)]:
        logger.removeHandler(handler)
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(message)s" if verbosity <= 0 else "%(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


logging.getLogger(ROOT).addHandler(logging.NullHandler())
