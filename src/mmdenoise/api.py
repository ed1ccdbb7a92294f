"""The Python API: ``train(...)`` returns a :class:`Run`; ``evaluate_run`` re-scores a run folder.

    from mmdenoise import load_dataset, train
    run = train(load_dataset("ml-100k"), model="lightgcn", seed=0)
    run.test["recall@20"], run.history, run.checkpoint
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .config import RunConfig, TrainConfig, apply_overrides, dump_yaml, from_dict, load_yaml, lookup, to_dict
from .data import Dataset, load_dataset
from .denoise import DENOISERS, Denoiser
from .errors import ConfigError
from .eval import EvalResult
from .io import write_text
from .models import MODELS
from .models.base import Backbone
from .training import record
from .training.trainer import Trainer, limit_threads


@dataclass
class Run:
    """A finished (or loaded) run: its config, per-epoch history, metrics and files."""

    config: RunConfig
    path: Path | None
    history: list[dict]
    valid: dict[str, float]
    test: dict[str, float]
    result: dict[str, Any]
    backbone: Backbone | None = None
    denoiser: Denoiser | None = None

    @property
    def checkpoint(self) -> Path | None:
        return None if self.path is None else self.path / record.CHECKPOINT_FILE

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        """Read a run folder written by :func:`train` (no model is rebuilt)."""
        path = Path(path)
        config = resolve_config(load_yaml(path / record.CONFIG_FILE))
        result = record.read_result(path)
        return cls(config=config, path=path, history=record.read_metrics(path),
                   valid=result["valid"], test=result["test"], result=result)


def resolve_config(data: Mapping[str, Any] | RunConfig | None = None,
                   overrides: Sequence[str] = ()) -> RunConfig:
    """Validate a raw config mapping (+ ``key=value`` overrides) into a RunConfig.

    Model and denoiser parameters are checked against their registered config
    classes and completed with their defaults, so the result is fully resolved.
    """
    if isinstance(data, RunConfig):
        data = to_dict(data)
    raw = dict(data or {})
    # top-level overrides first: they decide which model/denoiser fields exist
    top = [o for o in overrides if o.split("=", 1)[0].strip() in ("dataset", "model", "denoiser", "seed")]
    raw = apply_overrides(raw, top, [], [])
    model = raw.get("model", RunConfig.model)
    denoiser = raw.get("denoiser", RunConfig.denoiser)
    if not isinstance(model, str) or not isinstance(denoiser, str):
        raise ConfigError(f"model and denoiser must be names, got {model!r} and {denoiser!r}")
    model_cls = lookup(MODELS, model, "model").config_cls
    denoiser_cls = lookup(DENOISERS, denoiser, "denoiser").config_cls
    rest = [o for o in overrides if o not in top]
    raw = apply_overrides(raw, rest, [f.name for f in dataclasses.fields(model_cls)],
                          [f.name for f in dataclasses.fields(denoiser_cls)])
    config = from_dict(RunConfig, raw, "config")
    config.model_params = to_dict(from_dict(model_cls, config.model_params, f"model_params ({model})"))
    config.denoiser_params = to_dict(from_dict(denoiser_cls, config.denoiser_params,
                                               f"denoiser_params ({denoiser})"))
    return config


def build(dataset: Dataset, config: RunConfig) -> tuple[Backbone, Denoiser]:
    """Construct the backbone and the denoiser around it (seeded by ``config.seed``)."""
    import torch

    limit_threads(config.train.threads)  # before graph builds and hash fits, not only for training
    torch.manual_seed(config.seed)
    model_entry = lookup(MODELS, config.model, "model")
    backbone = model_entry.build(dataset, from_dict(model_entry.config_cls, config.model_params))
    denoiser_entry = lookup(DENOISERS, config.denoiser, "denoiser")
    denoiser = denoiser_entry.build(dataset, backbone,
                                    from_dict(denoiser_entry.config_cls, config.denoiser_params))
    return backbone, denoiser


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = Path(config.dataset).name
    return Path(root) / f"{name}-{config.model}-{config.denoiser}-s{config.seed}-{stamp}"


def train(dataset: Dataset | str | Path | None = None, model: str | None = None,
          denoiser: str | None = None, *, seed: int | None = None,
          config: str | Path | Mapping[str, Any] | RunConfig | None = None,
          overrides: Sequence[str] = (), out: str | Path | None = None, resume: bool = False,
          progress: bool | None = None, tensorboard: bool = False) -> Run:
    """Train ``model`` with ``denoiser`` on ``dataset`` and return the :class:`Run`.

    dataset: a Dataset, a registered name (``"ml-100k"``) or an MMRec folder.
    config: a YAML file, a mapping or a RunConfig; explicit arguments and then
        ``overrides`` (``["train.lr=0.01", "n_layers=3"]``) take precedence.
    out: the run folder (default ``runs/<dataset>-<model>-<denoiser>-s<seed>-<time>``;
        with ``resume`` it must be given and hold a checkpoint).
    tensorboard: also write each epoch's metrics.jsonl row as TensorBoard
        scalars to ``<run>/tensorboard/`` (needs the ``tensorboard`` extra).
    """
    if isinstance(config, (str, Path)):
        raw = load_yaml(config)
    elif isinstance(config, RunConfig):
        raw = to_dict(config)
    else:
        raw = dict(config or {})
    if isinstance(dataset, Dataset):
        raw["dataset"] = str(dataset.path) if dataset.path is not None else dataset.name
    elif dataset is not None:
        raw["dataset"] = str(dataset)
    for key, value in (("model", model), ("denoiser", denoiser), ("seed", seed)):
        if value is not None:
            raw[key] = value
    if progress is not None:
        raw.setdefault("train", {})
        raw["train"] = {**raw["train"], "progress": progress}
    run_config = resolve_config(raw, overrides)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(run_config.dataset)

    if resume and out is None:
        raise ConfigError("resume needs the run folder (out=...)")
    run_dir = Path(out) if out is not None else default_run_dir(run_config)
    # a missing tensorboard package fails before anything is written
    logger = None
    if tensorboard:
        from .training.tensorboard import TENSORBOARD_DIR, TensorBoardLogger
        logger = TensorBoardLogger(run_dir / TENSORBOARD_DIR)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / record.CONFIG_FILE, dump_yaml(run_config))

    try:
        _, den = build(data, run_config)
        trainer = Trainer(data, den, run_config.train, seed=run_config.seed, run_dir=run_dir, on_epoch=logger)
        fit = trainer.fit(resume=resume)
    finally:
        if logger is not None:
            logger.close()
    result = {
        "valid": fit.valid.metrics, "test": fit.test.metrics,
        "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run, "stopped_early": fit.stopped_early,
        "seconds_per_epoch": fit.seconds_per_epoch, "eval_seconds": fit.eval_seconds,
        "total_seconds": fit.total_seconds, "peak_rss_mb": record.peak_rss_mb(),
        "device": str(trainer.device),
        "dataset": {"name": data.name, "fingerprint": data.fingerprint},
        "model": run_config.model, "denoiser": run_config.denoiser, "seed": run_config.seed,
        "versions": record.versions(),
    }
    scores = den.interaction_scores()
    if scores is not None:
        noisy = data.noise.noisy_interactions if data.noise is not None else None
        record.write_scores(run_dir, scores, noisy)
        detection = trainer.detection()
        if detection is not None:
            result["detection"] = detection
    record.write_per_user(run_dir, fit.valid, fit.test)
    record.write_result(run_dir, result)
    return Run(config=run_config, path=run_dir, history=fit.history, valid=fit.valid.metrics,
               test=fit.test.metrics, result=result, backbone=den.backbone, denoiser=den)


def evaluate_run(run_dir: str | Path, dataset: Dataset | None = None) -> tuple[EvalResult, EvalResult]:
    """Rebuild a run's model from its folder, load the best state and evaluate valid and test."""
    run_dir = Path(run_dir)
    config = resolve_config(load_yaml(run_dir / record.CONFIG_FILE))
    data = dataset if dataset is not None else load_dataset(config.dataset)
    best = record.load_best_state(run_dir, data)
    backbone, den = build(data, config)
    den.load_state_dict(best)
    trainer = Trainer(data, den, dataclasses.replace(config.train, progress=False), seed=config.seed)
    trainer.prepare()
    return trainer.evaluate(trainer.valid_evaluator), trainer.evaluate(trainer.test_evaluator)


__all__ = ["Run", "train", "evaluate_run", "resolve_config", "build", "TrainConfig"]
