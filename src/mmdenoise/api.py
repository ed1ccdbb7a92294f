"""The Python API: ``train(...)`` returns a :class:`Run`; ``Run.load`` reads one back with its model;
``Run.recommend`` gives each user's top-K items; ``evaluate_run`` re-scores a run folder.

    from mmdenoise import load_dataset, train
    run = train(load_dataset("ml-100k"), model="lightgcn", seed=0)
    run.test["recall@20"], run.history, run.checkpoint
    run.recommend([1, 2, 3], k=10).items

The model name decides the task: ``models.MODELS`` names train the general
task (any denoiser), ``sequential.SEQUENTIAL_MODELS`` names the sequential one
(``train`` hands those to ``sequential.api.train_sequential``).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .config import (RunConfig, TrainConfig, apply_overrides, dump_yaml, from_dict, load_yaml, lookup,
                     parse_override, to_dict)
from .data import Dataset, load_dataset
from .denoise import DENOISERS, Denoiser
from .errors import ConfigError, RunError
from .eval import EvalResult
from .io import write_text
from .log import get_logger
from .models import MODELS
from .models.base import Backbone
from .training import folder, record
from .training.trainer import Trainer, limit_threads, resolve_device

log = get_logger(__name__)
TASKS = ("general", "sequential")


def model_task(model: str) -> str:
    """``"general"`` for a ``MODELS`` name, ``"sequential"`` for a ``SEQUENTIAL_MODELS`` name;
    a ConfigError listing both registries otherwise."""
    from .sequential.config import LEGACY_NAMES, SEQUENTIAL_MODELS
    if model in MODELS:
        return "general"
    if model in SEQUENTIAL_MODELS or model in LEGACY_NAMES:
        return "sequential"
    raise ConfigError(f"unknown model {model!r}; general models: {', '.join(MODELS)}; "
                      f"sequential models: {', '.join(SEQUENTIAL_MODELS)} (see `mmdenoise list models`)")


@dataclass
class Recommendations:
    """Top-K lists of ``Run.recommend``, row j for ``users[j]``.

    users: int64 [B]; items: int64 [B, K] best first; scores: float32 [B, K]
    (the model's scores); titles: str [B, K] where the dataset folder has
    ``items.tsv``, else None.
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    titles: np.ndarray | None = None

    def rows(self) -> list[dict]:
        """One dict per (user, rank): user, rank (1-based), item, score and title (None without titles)."""
        return [{"user": int(u), "rank": r + 1, "item": int(self.items[j, r]), "score": float(self.scores[j, r]),
                 "title": None if self.titles is None else str(self.titles[j, r])}
                for j, u in enumerate(self.users) for r in range(self.items.shape[1])]


@dataclass
class Run:
    """A finished (or loaded) run: its config, per-epoch history, metrics, files and trained model.

    ``backbone`` is the trained model at its best validation state (the
    sequential model for a sequential run), ``denoiser`` the general task's
    denoiser around it; ``dataset`` the data it was trained on.
    """

    config: Any   # RunConfig, or SequentialRunConfig for a sequential run
    path: Path | None
    history: list[dict]
    valid: dict[str, float]
    test: dict[str, float]
    result: dict[str, Any]
    backbone: Any = None
    denoiser: Denoiser | None = None
    dataset: Dataset | None = dataclasses.field(default=None, repr=False)

    @property
    def checkpoint(self) -> Path | None:
        return None if self.path is None else self.path / record.CHECKPOINT_FILE

    @property
    def task(self) -> str:
        return "sequential" if self.result.get("task") == "sequential" else "general"

    @classmethod
    def load(cls, path: str | Path, dataset: Dataset | None = None, *, model: bool = True) -> "Run":
        """Read a run folder written by :func:`train` and rebuild its model at the best validation state.

        dataset: the data it was trained on (default: ``config.yaml``'s dataset,
            loaded by name or folder); the checkpoint must match its fingerprint.
        model: False reads the records only (no dataset, no model).
        """
        path = Path(path)
        raw = read_run_config(path)
        if raw.get("task") == "sequential":
            from .sequential.api import load_sequential_run
            return load_sequential_run(path, dataset, model=model)
        config = resolve_config(raw)
        result = record.read_result(path)
        run = cls(config=config, path=path, history=record.read_metrics(path),
                  valid=result["valid"], test=result["test"], result=result)
        if model:
            run.dataset = dataset if dataset is not None else load_dataset(config.dataset)
            best = record.load_best_state(path, run.dataset)
            _, run.denoiser = build(run.dataset, config)
            run.denoiser.load_state_dict(best)
            run.denoiser.train(False)
            run.backbone = run.denoiser.backbone
        return run

    def recommend(self, users: Sequence[int] | np.ndarray, k: int = 10, *, exclude: str = "train",
                  batch_size: int = 4096) -> Recommendations:
        """Each user's ``k`` best items by the trained model, ranked as the test evaluation ranks them.

        users: user ids (0-based indices of the dataset).
        exclude: ``"train"`` masks what the test evaluation masks (the
            training items, plus validation items with
            ``train.mask_valid_in_test``; for a sequential run, the history the
            model knows); ``"all"`` masks every interaction of the user in any split.
        Ties rank by item id (``eval.top_k_items``). ConfigError on an unknown
        user id or when the run has no model (``Run.load(..., model=False)``).
        """
        if self.backbone is None or self.dataset is None:
            raise ConfigError("this run has no model loaded; use Run.load(path) (model=True)")
        if exclude not in ("train", "all"):
            raise ConfigError(f"exclude must be 'train' or 'all', got {exclude!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        user_ids = check_users(users, self.dataset.n_users, self.dataset.name)
        if self.task == "sequential":
            from .sequential.api import sequential_scores
            score_fn, mask = sequential_scores(self, user_ids, exclude)
        else:
            score_fn, mask = _general_scores(self, exclude)
        return rank_for_users(score_fn, mask, user_ids, int(k), self.dataset, batch_size)


def read_run_config(path: Path) -> dict:
    """The raw ``config.yaml`` of a finished run folder; a RunError naming what is missing otherwise."""
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder")
    for name in (record.CONFIG_FILE, record.RESULT_FILE):
        if not (path / name).is_file():
            raise RunError(f"{path} is not a finished run folder (no {name}); train one with "
                           "`mmdenoise train ... --out FOLDER`")
    return load_yaml(path / record.CONFIG_FILE)


def check_users(users: Sequence[int] | np.ndarray, n_users: int, name: str) -> np.ndarray:
    """``users`` as int64 [B]; a one-line ConfigError naming the first bad id and the valid range."""
    array = np.asarray(users)
    if array.ndim != 1 or array.size == 0:
        raise ConfigError("users: give at least one user id")
    if not np.issubdtype(array.dtype, np.integer):
        raise ConfigError(f"users: ids are integers, got {array.tolist()!r}")
    bad = array[(array < 0) | (array >= n_users)]
    if bad.size:
        raise ConfigError(f"unknown user id {int(bad[0])}: {name} has user ids 0..{n_users - 1}")
    return array.astype(np.int64)


def _general_scores(run: Run, exclude: str):
    """score_fn(users [B]) -> [B, I] of a general run's backbone, and the users × items mask."""
    import torch

    from .eval import mask_matrix
    backbone = run.backbone
    backbone.train(False)
    with torch.no_grad():
        user_emb, item_emb = backbone()
    mask = mask_matrix(run.dataset, "test", run.config.train.mask_valid_in_test)
    if exclude == "all":
        mask = (mask + run.dataset.interaction_matrix("valid") + run.dataset.interaction_matrix("test")).tocsr()
    device = user_emb.device
    return (lambda users: backbone.full_scores(user_emb, item_emb, users.to(device))), mask


def rank_for_users(score_fn, mask, users: np.ndarray, k: int, dataset: Dataset,
                   batch_size: int = 4096) -> Recommendations:
    """Score ``users`` in blocks (one matmul each), mask ``mask``'s items, top-k: Recommendations."""
    import torch

    from .data.titles import read_item_titles
    from .eval import masked_top_k
    from .eval.evaluator import row_entries
    k = min(k, dataset.n_items)
    items, scores = [], []
    with torch.no_grad():
        for start in range(0, users.size, batch_size):
            block = users[start:start + batch_size]
            block_scores = score_fn(torch.from_numpy(block))
            # as the evaluator: a copy (scores may be a view of model state), integers as float64
            block_scores = (block_scores.clone() if block_scores.is_floating_point()
                            else block_scores.to(torch.float64))
            rows, cols = row_entries(mask[block])
            put = lambda a: torch.from_numpy(a).to(block_scores.device)  # noqa: E731
            ranked = masked_top_k(block_scores, put(rows), put(cols), k)
            items.append(ranked.cpu())
            scores.append(block_scores.gather(1, ranked).cpu())
    top = torch.cat(items).numpy()
    titles = read_item_titles(dataset.path, dataset.n_items)
    return Recommendations(users=users, items=top, scores=torch.cat(scores).numpy(),
                           titles=None if titles is None else titles[top])


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
          overwrite: bool = False, progress: bool | None = None, tensorboard: bool = False) -> Run:
    """Train ``model`` with ``denoiser`` on ``dataset`` and return the :class:`Run`.

    dataset: a Dataset, a registered name (``"ml-100k"``) or an MMRec folder.
    config: a YAML file, a mapping or a RunConfig; explicit arguments and then
        ``overrides`` (``["train.lr=0.01", "n_layers=3"]``) take precedence.
    out: the run folder (default ``runs/<dataset>-<model>-<denoiser>-s<seed>-<time>``);
        it must be new, empty or hold this same run (``training.folder``).
    resume: continue the run in ``out`` from its checkpoint; what is not given
        is taken from the folder's config.yaml, and what is given must match it.
    overwrite: replace another run in ``out`` (a dataset folder is always refused).
    tensorboard: also write each epoch's metrics.jsonl row as TensorBoard
        scalars to ``<run>/tensorboard/`` (needs the ``tensorboard`` extra).

    Everything (settings, folder, data, model) is checked before the folder
    is created or changed; a refused resume changes nothing.
    A sequential model (``SEQUENTIAL_MODELS``) trains the sequential task
    (``denoiser`` must then be None or ``"none"``; Demure is a model).
    """
    if resume and out is None:
        raise ConfigError("resume needs the run folder (out=...)")
    if isinstance(config, (str, Path)):
        given = load_yaml(config)
    elif dataclasses.is_dataclass(config):
        given = to_dict(config)
    else:
        given = dict(config or {})
    name = model if model is not None else _override_value(overrides, "model", given.get("model"))
    if name is None and resume and (Path(out) / record.CONFIG_FILE).is_file():
        name = load_yaml(Path(out) / record.CONFIG_FILE).get("model")  # a resume may name nothing
    name = RunConfig.model if name is None else name
    task = model_task(name) if isinstance(name, str) else "general"
    if given.get("task", task) != task:
        raise ConfigError(f"the config says task {given['task']!r}, but model {name!r} is a {task} model")
    given.pop("task", None)
    if task == "sequential":
        if denoiser not in (None, "none") or _override_value(overrides, "denoiser", "none") != "none":
            raise ConfigError(f"{name} is a sequential model: it takes no denoiser (Demure is the model "
                              "`demure`; denoisers wrap general models)")
        if tensorboard:
            raise ConfigError("--tensorboard is available for general models only")
        from .sequential.api import train_sequential
        return train_sequential(dataset, model, seed=seed, config={**given, "task": task}, overrides=overrides,
                                out=out, resume=resume, overwrite=overwrite, progress=progress)
    resolved = lambda raw: to_dict(resolve_config(raw))  # noqa: E731
    stored = folder.read_for_resume(Path(out), resolved, "general") if resume else None
    raw = {**(stored or {}), **given}
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
    if resume:
        folder.check_resume_names(Path(out), raw, stored)
    run_config = resolve_config(raw, overrides)
    resolve_device(run_config.train.device)
    run_dir = Path(out) if out is not None else default_run_dir(run_config)
    settings = to_dict(run_config)
    if resume:
        checkpoint = folder.check_resume(run_dir, settings, stored, RunConfig)
    else:
        folder.check_new_run(run_dir, settings, RunConfig, resolved, overwrite)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(run_config.dataset)
    log.info("train %s + %s on %s (seed %d)", run_config.model, run_config.denoiser, data.name, run_config.seed)
    if resume:
        record.check_fingerprint(run_dir, checkpoint, data, "resume")
    _, den = build(data, run_config)
    if tensorboard:  # a missing tensorboard package fails before anything is written
        from .training.tensorboard import summary_writer
        summary_writer()

    with folder.writing_run(run_dir, fresh=not resume):
        if not resume:
            write_text(run_dir / record.CONFIG_FILE, dump_yaml(run_config))
        logger = None
        if tensorboard:
            from .training.tensorboard import TensorBoardLogger
            logger = TensorBoardLogger(run_dir / record.TENSORBOARD_DIR)
        try:
            trainer = Trainer(data, den, run_config.train, seed=run_config.seed, run_dir=run_dir,
                              on_epoch=logger)
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
            "dataset": record.dataset_summary(data),
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
               test=fit.test.metrics, result=result, backbone=den.backbone, denoiser=den, dataset=data)


def _override_value(overrides: Sequence[str], key: str, default: Any) -> Any:
    """The value the last ``key=value`` override gives to top-level ``key`` (else ``default``)."""
    value = default
    for text in overrides:
        path, parsed = parse_override(text)
        if path == [key]:
            value = parsed
    return value


def evaluate_run(run_dir: str | Path, dataset: Dataset | None = None) -> tuple[EvalResult, EvalResult]:
    """Rebuild a run's model from its folder, load the best state and evaluate valid and test
    (a sequential run's validation and test users)."""
    run_dir = Path(run_dir)
    raw = read_run_config(run_dir)
    if raw.get("task") == "sequential":
        from .sequential.api import evaluate_sequential_run
        return evaluate_sequential_run(run_dir, dataset)
    config = resolve_config(raw)
    data = dataset if dataset is not None else load_dataset(config.dataset)
    best = record.load_best_state(run_dir, data)
    backbone, den = build(data, config)
    den.load_state_dict(best)
    trainer = Trainer(data, den, dataclasses.replace(config.train, progress=False), seed=config.seed)
    trainer.prepare()
    return trainer.evaluate(trainer.valid_evaluator), trainer.evaluate(trainer.test_evaluator)


__all__ = ["Run", "Recommendations", "train", "evaluate_run", "model_task", "resolve_config", "build",
           "TrainConfig", "TASKS"]
