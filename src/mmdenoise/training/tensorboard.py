"""Optional TensorBoard logging: the per-epoch row the trainer writes to metrics.jsonl, as scalars.

Needs the ``tensorboard`` package (``pip install 'mmdenoise[tensorboard]'``);
asking for it without the package is a ConfigError, and nothing imports it
unless asked.
"""
from __future__ import annotations

from numbers import Real
from pathlib import Path

from ..errors import ConfigError
from .record import TENSORBOARD_DIR  # noqa: F401 - where the logs go (re-exported)


class TensorBoardLogger:
    """An ``on_epoch`` callback for :class:`~mmdenoise.training.trainer.Trainer` writing to ``log_dir``.

    Each numeric entry of the row becomes a scalar at step ``row["epoch"]``;
    nested mappings are flattened with ``/`` (``valid/recall@20``,
    ``detection/auc``). Call :meth:`close` at the end to flush the event file.
    """

    def __init__(self, log_dir: str | Path):
        self.writer = summary_writer()(log_dir=str(log_dir))

    def __call__(self, row: dict) -> None:
        step = int(row["epoch"])
        for tag, value in _scalars(row):
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def _scalars(row: dict, prefix: str = ""):
    """(tag, float) pairs of the numeric leaves of ``row`` (the epoch number itself excluded)."""
    for key, value in row.items():
        tag = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _scalars(value, f"{tag}/")
        elif isinstance(value, Real) and not isinstance(value, bool) and tag != "epoch":
            yield tag, float(value)


def summary_writer() -> type:
    """torch's SummaryWriter class; a ConfigError naming the extra to install when tensorboard is missing
    (called before a run folder is written, so asking for it without the package writes nothing)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("TensorBoard logging needs the tensorboard package: "
                          "pip install 'mmdenoise[tensorboard]'") from None
    return SummaryWriter
