"""Python API of the sequential task: ``train_sequential(...)`` returns a ``Run`` like ``mmdenoise.train``.

    from mmdenoise.sequential import train_sequential
    run = train_sequential("synth-seq-tiny", "demure", seed=0, overrides=["gamma_i=0.4", "train.threads=1"])
    run.test["recall@20"], run.result["localisation"]

The run folder is the general task's (DESIGN §7): ``config.yaml``
(``task: sequential``), ``metrics.jsonl``, ``result.json`` (plus ``task``,
``sequence``: the view's sizes, and on planted datasets ``localisation``),
``per_user.npz`` (validation/test users, so ``eval.compare`` pairs two runs)
and ``checkpoint.pt``.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..api import Run, read_run_config
from ..config import dump_yaml, from_dict, load_yaml, lookup, to_dict
from ..data import Dataset, load_dataset
from ..data.seqsynth import read_seq_truth
from ..errors import ConfigError
from ..eval import EvalResult
from ..io import write_text
from ..log import get_logger
from ..training import folder, record
from ..training.trainer import limit_threads, resolve_device
from .config import SEQUENTIAL_MODELS, SequentialRunConfig, resolve_sequential_config
from .interest import INTEREST_KINDS
from .localisation import localisation_accuracy
from .trainer import SequentialTrainer
from .view import UNUSED_USER, SequenceView

log = get_logger(__name__)


def make_view(dataset: Dataset, config: SequentialRunConfig) -> SequenceView:
    """The run's sequence view (same dataset and ``sequence`` settings → the same user split)."""
    seq = config.sequence
    return SequenceView.from_dataset(dataset, max_len=seq.max_len, history_ratio=seq.history_ratio,
                                     user_ratios=tuple(seq.user_ratios), seed=seq.split_seed)


def build_sequential(dataset: Dataset, view: SequenceView, config: SequentialRunConfig) -> torch.nn.Module:
    """The configured model, its parameters drawn under ``config.seed``."""
    limit_threads(config.train.threads)
    torch.manual_seed(config.seed)
    entry = lookup(SEQUENTIAL_MODELS, config.model, "sequential model")
    return entry.build(dataset, view, from_dict(entry.config_cls, config.model_params))


def default_sequential_run_dir(config: SequentialRunConfig, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{Path(config.dataset).name}-seq-{config.model}-s{config.seed}-{stamp}"


def _raw_config(config) -> dict:
    if isinstance(config, (str, Path)):
        return load_yaml(config)
    if isinstance(config, SequentialRunConfig):
        return to_dict(config)
    return dict(config or {})


ConfigSource = str | Path | Mapping[str, Any] | SequentialRunConfig | None


def train_sequential(dataset: Dataset | str | Path | None = None, model: str | None = None, *,
                     seed: int | None = None, config: ConfigSource = None, overrides: Sequence[str] = (),
                     out: str | Path | None = None, resume: bool = False, overwrite: bool = False,
                     progress: bool | None = None) -> Run:
    """Train sequential model ``model`` (a ``SEQUENTIAL_MODELS`` name) on ``dataset`` and return the Run.

    dataset: a Dataset (with timestamps), a registered name or a folder.
    config: a YAML file, a mapping or a SequentialRunConfig; explicit
        arguments, then ``overrides``, take precedence.
    out: the run folder (default ``runs/<dataset>-seq-<model>-s<seed>-<time>``); resume and overwrite
        as in :func:`mmdenoise.api.train` (everything is checked before the folder is written).
    ``Run.backbone`` is the trained model; ``Run.denoiser`` is None.
    """
    if resume and out is None:
        raise ConfigError("resume needs the run folder (out=...)")
    resolved = lambda raw: to_dict(resolve_sequential_config(raw))  # noqa: E731
    stored = folder.read_for_resume(Path(out), resolved, "sequential") if resume else None
    raw = {**(stored or {}), **_raw_config(config)}
    if isinstance(dataset, Dataset):
        raw["dataset"] = str(dataset.path) if dataset.path is not None else dataset.name
    elif dataset is not None:
        raw["dataset"] = str(dataset)
    for key, value in (("model", model), ("seed", seed)):
        if value is not None:
            raw[key] = value
    if progress is not None:
        raw["train"] = {**(raw.get("train") or {}), "progress": progress}
    if resume:
        folder.check_resume_names(Path(out), raw, stored)
    run_config = resolve_sequential_config(raw, overrides)
    resolve_device(run_config.train.device)
    run_dir = Path(out) if out is not None else default_sequential_run_dir(run_config)
    settings = to_dict(run_config)
    if resume:
        checkpoint = folder.check_resume(run_dir, settings, stored, SequentialRunConfig)
    else:
        folder.check_new_run(run_dir, settings, SequentialRunConfig, resolved, overwrite)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(run_config.dataset)
    if resume:
        record.check_fingerprint(run_dir, checkpoint, data, "resume")
    view = make_view(data, run_config)
    net = build_sequential(data, view, run_config)
    log.info("train %s (sequential) on %s (seed %d)", run_config.model, data.name, run_config.seed)

    with folder.writing_run(run_dir, fresh=not resume):
        if not resume:
            write_text(run_dir / record.CONFIG_FILE, dump_yaml(run_config))
        trainer = SequentialTrainer(data, view, net, run_config.train, n_negatives=run_config.sequence.n_negatives,
                                    seed=run_config.seed, run_dir=run_dir)
        fit = trainer.fit(resume=resume)
        result = {
            "valid": fit.valid.metrics, "test": fit.test.metrics,
            "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run, "stopped_early": fit.stopped_early,
            "seconds_per_epoch": fit.seconds_per_epoch, "eval_seconds": fit.eval_seconds,
            "total_seconds": fit.total_seconds, "peak_rss_mb": record.peak_rss_mb(),
            "device": str(trainer.device), "dataset": record.dataset_summary(data),
            "task": "sequential", "model": run_config.model, "denoiser": "none", "seed": run_config.seed,
            "sequence": view.summary(), "versions": record.versions(),
        }
        truth = read_seq_truth(data.path) if data.path is not None else None
        if truth is not None and hasattr(getattr(net, "base", net), "encoder"):
            result["localisation"] = {kind: localisation_accuracy(net, view, truth, "test", kind=kind)
                                      for kind in INTEREST_KINDS}
        record.write_per_user(run_dir, fit.valid, fit.test)
        record.write_result(run_dir, result)
    return Run(config=run_config, path=run_dir, history=fit.history, valid=fit.valid.metrics,
               test=fit.test.metrics, result=result, backbone=net, denoiser=None, dataset=data)


def load_sequential_run(run_dir: str | Path, dataset: Dataset | None = None, *, model: bool = True) -> Run:
    """Read a sequential run folder and rebuild its model at the best validation state (``Run.load``).

    dataset: the data it was trained on (default: ``config.yaml``'s dataset);
    model: False reads the records only.
    """
    path = Path(run_dir)
    config = resolve_sequential_config(read_run_config(path))
    result = record.read_result(path)
    run = Run(config=config, path=path, history=record.read_metrics(path), valid=result["valid"],
              test=result["test"], result=result)
    if model:
        run.dataset = dataset if dataset is not None else load_dataset(config.dataset)
        best = record.load_best_state(path, run.dataset)
        run.backbone = build_sequential(run.dataset, make_view(run.dataset, config), config)
        run.backbone.load_state_dict(best)
        run.backbone.train(False)
    return run


def sequential_scores(run: Run, users: np.ndarray, exclude: str):
    """score_fn(users [B]) -> [B, I] of a sequential run's model after each user's history, and the
    users × items mask (what the evaluator masks: every known history; ``exclude="all"``: every
    interaction). A training user's history is its whole sequence (its last ``max_len`` items); a
    validation or test user's is the protocol's first part (``sequence.history_ratio``), as evaluated."""
    view = make_view(run.dataset, run.config)
    unused = users[view.user_split[users] == UNUSED_USER]
    if unused.size:
        raise ConfigError(f"user {int(unused[0])} has no interactions: a sequential model recommends after a "
                          "user's history")
    net = run.backbone
    net.train(False)
    device = next((t.device for t in (*net.parameters(), *net.buffers())), torch.device("cpu"))
    with torch.no_grad():
        table = net.ranking_table(view.n_items)

    def score_fn(block: torch.Tensor) -> torch.Tensor:
        history, _ = view.histories(block.cpu().numpy())
        return net.full_scores(torch.from_numpy(history).to(device), table)

    if exclude == "all":
        data = run.dataset
        mask = (data.interaction_matrix("train") + data.interaction_matrix("valid")
                + data.interaction_matrix("test")).tocsr()
    else:
        mask = view.evaluation_dataset().interaction_matrix("train")
    return score_fn, mask


def evaluate_sequential_run(run_dir: str | Path, dataset: Dataset | None = None) -> tuple[EvalResult, EvalResult]:
    """Rebuild a sequential run's model, load its best state and evaluate validation and test users."""
    run_dir = Path(run_dir)
    config = resolve_sequential_config(read_run_config(run_dir))
    data = dataset if dataset is not None else load_dataset(config.dataset)
    best = record.load_best_state(run_dir, data)
    view = make_view(data, config)
    net = build_sequential(data, view, config)
    net.load_state_dict(best)
    trainer = SequentialTrainer(data, view, net, dataclasses.replace(config.train, progress=False),
                                n_negatives=config.sequence.n_negatives, seed=config.seed)
    trainer.prepare()
    return trainer.evaluate(trainer.valid_evaluator), trainer.evaluate(trainer.test_evaluator)
