"""``mmdenoise bench``: seconds per epoch, seconds per full evaluation, peak memory (DESIGN §8)."""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np
import torch

from .api import build, resolve_config
from .data import load_dataset
from .training import record
from .training.general import GeneralTask
from .training.trainer import Trainer


def bench(dataset: str, model: str, denoiser: str = "none", *, epochs: int = 5, evals: int = 3,
          overrides: Sequence[str] = (), seed: int = 0) -> dict:
    """Time ``epochs`` training epochs and ``evals`` full validation evaluations.

    The first epoch and the first evaluation are reported separately as
    warm-up; the steady-state figures are medians of the rest. Returns a dict
    of the measurements (seconds, MiB). ``build_seconds`` and
    ``build_peak_rss_mb`` cover building the model, item graphs included
    when they are not in the graph cache yet (a cold cache measures the build).
    """
    config = resolve_config({"dataset": dataset, "model": model, "denoiser": denoiser, "seed": seed},
                            overrides)
    t0 = time.perf_counter()
    data = load_dataset(config.dataset)
    load_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    backbone, den = build(data, config)
    build_seconds = time.perf_counter() - t0
    build_peak_rss_mb = record.peak_rss_mb()  # load + model build (item graphs when not cached)
    trainer = Trainer(GeneralTask(data, den), dataclasses.replace(config.train, progress=False), seed=seed)
    trainer.prepare()
    optimizer = trainer.make_optimizer()
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)

    def timed(fn):
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        start = time.perf_counter()
        fn()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        return time.perf_counter() - start

    epoch_times = [timed(lambda e=e: trainer.train_epoch(e, optimizer)) for e in range(epochs)] \
        if optimizer is not None else []
    eval_times = [timed(lambda: trainer.evaluate(trainer.valid_evaluator)) for _ in range(evals)]
    steady = lambda xs: float(np.median(xs[1:] if len(xs) > 1 else xs)) if xs else 0.0  # noqa: E731
    out = {
        "dataset": data.name, "model": config.model, "denoiser": config.denoiser,
        "device": str(trainer.device), "threads": torch.get_num_threads(),
        "users": data.n_users, "items": data.n_items, "train_interactions": len(data.train),
        "load_seconds": load_seconds, "build_seconds": build_seconds, "build_peak_rss_mb": build_peak_rss_mb,
        "first_epoch_seconds": epoch_times[0] if epoch_times else 0.0,
        "seconds_per_epoch": steady(epoch_times),
        "first_eval_seconds": eval_times[0], "eval_seconds": steady(eval_times),
        "peak_rss_mb": record.peak_rss_mb(),
    }
    if trainer.device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
    return out
