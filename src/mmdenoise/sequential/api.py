"""``train_sequential``: ``mmdenoise.train`` for a sequential model, kept under its former name.

Runs of both tasks go through the one runs module, :mod:`mmdenoise.api`
(``Run``, ``train``, ``evaluate_run``, ``Run.load``); this name stays for the
callers written against the former sequential API.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..api import Run, given_config, train
from ..data import Dataset
from .config import SequentialRunConfig


def train_sequential(dataset: Dataset | str | Path | None = None, model: str | None = None, *,
                     seed: int | None = None,
                     config: str | Path | Mapping[str, Any] | SequentialRunConfig | None = None,
                     overrides: Sequence[str] = (), out: str | Path | None = None, resume: bool = False,
                     overwrite: bool = False, progress: bool | None = None) -> Run:
    """Train sequential model ``model`` (a ``SEQUENTIAL_MODELS`` name, or the config's) on ``dataset``:
    :func:`mmdenoise.api.train` with a config of task ``sequential``."""
    return train(dataset, model, seed=seed, config={"task": "sequential", **given_config(config)},
                 overrides=overrides, out=out, resume=resume, overwrite=overwrite, progress=progress)
