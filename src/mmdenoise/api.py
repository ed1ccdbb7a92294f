"""The runs module: ``train(...)`` returns a :class:`Run`; ``Run.load`` reads one back with its model;
``Run.recommend`` gives each user's top-K items; ``evaluate_run`` re-scores a run folder. One flow
for both tasks.

    from mmdenoise import load_dataset, train
    run = train(load_dataset("ml-100k"), model="lightgcn", seed=0)
    run.test["recall@20"], run.history, run.checkpoint
    run.recommend([1, 2, 3], k=10).items

The model's registry entry decides the task (``model_task``): ``models.MODELS``
names train the general task (any denoiser), ``sequential.SEQUENTIAL_MODELS``
names the sequential one. What differs between the two in a run's life is one
:class:`TaskKind` each in ``TASKS``: how a raw config is resolved, how the
trainer's task (``training.trainer.Task``) is built, and what ``result.json``
records beyond the metrics. A run folder says its task in ``config.yaml``
(``task: sequential``; absent for general runs).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .config import (RunConfig, TrainConfig, dump_yaml, from_dict, load_yaml, parse_override, resolve_run_config,
                     run_keys, to_dict)
from .data import Dataset, load_dataset
from .denoise import DENOISERS, Denoiser
from .errors import ConfigError, DataError, RunError, did_you_mean, short
from .eval import EvalResult
from .eval.detection import per_user_auc
from .io import write_text
from .log import get_logger
from .models import MODELS
from .models.base import Backbone
from .models.features import set_feature_precision
from .registry import check_dataset, lookup
from .sequential import registry as sequential
from .sequential.config import SequentialRunConfig
from .training import folder, record
from .training.general import GeneralTask
from .training.trainer import Trainer, limit_threads, resolve_device

log = get_logger(__name__)


# ------------------------------------------------------------ the general task
def _model_and_denoiser_params(raw: dict) -> dict[str, type]:
    model = raw.get("model", RunConfig.model)
    denoiser = raw.get("denoiser", RunConfig.denoiser)
    if not isinstance(model, str) or not isinstance(denoiser, str):
        raise ConfigError(f"model and denoiser must be names, got {model!r} and {denoiser!r}")
    check_role(model, "model")
    check_role(denoiser, "denoiser")
    return {"model_params": lookup(MODELS, model, "model").config_cls,
            "denoiser_params": lookup(DENOISERS, denoiser, "denoiser").config_cls}


def resolve_config(data: Mapping[str, Any] | RunConfig | None = None,
                   overrides: Sequence[str] = ()) -> RunConfig:
    """Validate a raw config mapping (+ ``key=value`` overrides) into a RunConfig.

    Model and denoiser parameters are checked against their registered config
    classes and completed with their defaults, so the result is fully resolved.
    """
    return resolve_run_config(RunConfig, data, overrides, _model_and_denoiser_params)


def build(dataset: Dataset, config: RunConfig) -> tuple[Backbone, Denoiser]:
    """Construct the backbone and the denoiser around it (seeded by ``config.seed``); a ConfigError first
    when either entry's capabilities rule out ``dataset`` (``registry.check_dataset``)."""
    import torch

    model_entry = lookup(MODELS, config.model, "model")
    denoiser_entry = lookup(DENOISERS, config.denoiser, "denoiser")
    check_dataset(model_entry, "model", config.model, dataset)
    check_dataset(denoiser_entry, "denoiser", config.denoiser, dataset)
    limit_threads(config.train.threads)  # before graph builds and hash fits, not only for training
    torch.manual_seed(config.seed)
    backbone = model_entry.build(dataset, from_dict(model_entry.config_cls, config.model_params))
    set_feature_precision(backbone, config.train.feature_precision, config.model)
    denoiser = denoiser_entry.build(dataset, backbone,
                                    from_dict(denoiser_entry.config_cls, config.denoiser_params))
    return backbone, denoiser


def _general_findings(task: GeneralTask, run_dir: Path) -> dict[str, Any]:
    """A denoiser's judgement of each training interaction (interaction_scores.npz) and, on planted
    noise, how well it finds the noise: overall (result.json) and per user (per_user.npz's
    ``detection_users``, ``detection_auc``, which the claims benchmark pairs between runs)."""
    scores = task.denoiser.interaction_scores()
    if scores is None:
        return {}
    noise = task.dataset.noise
    record.write_scores(run_dir, scores, noise.noisy_interactions if noise is not None else None)
    detection = task.detection()
    if detection is None:
        return {}
    users, auc = per_user_auc(scores, noise.noisy_interactions, task.dataset.train.users)
    record.add_per_user(run_dir, detection_users=users, detection_auc=auc)
    return {"detection": detection}


# ----------------------------------------------------------------- both tasks
@dataclass(frozen=True)
class TaskKind:
    """What differs between the tasks in a run's life (the flow itself is one).

    resolve(raw, overrides) -> config; make_task(dataset, config) -> the
    trainer's Task with a freshly built model (drawn under ``config.seed``);
    folder_name(config): the default run folder before its time stamp;
    describe(config): what the log says is trained; identity(config, task):
    result.json's fields that say what ran; findings(task, run_dir): what the
    run measured beyond the metrics (writing its own files); check_users(task,
    users): a ConfigError for users the model cannot recommend to.
    """

    name: str
    config_cls: type
    resolve: Callable[..., Any]
    make_task: Callable[[Dataset, Any], Any]
    folder_name: Callable[[Any], str]
    describe: Callable[[Any], str]
    identity: Callable[[Any, Any], dict]
    findings: Callable[[Any, Path], dict]
    check_users: Callable[[Any, np.ndarray], None]


GENERAL = TaskKind(
    "general", RunConfig, resolve_config,
    make_task=lambda data, config: GeneralTask(data, build(data, config)[1]),
    folder_name=lambda c: f"{Path(c.dataset).name}-{c.model}-{c.denoiser}-s{c.seed}",
    describe=lambda c: f"{c.model} + {c.denoiser}",
    identity=lambda c, task: {"model": c.model, "denoiser": c.denoiser, "seed": c.seed},
    findings=_general_findings,
    check_users=lambda task, users: None)  # a general model scores any user
SEQUENTIAL = TaskKind(
    "sequential", SequentialRunConfig, sequential.resolve_sequential_config, sequential.make_task,
    sequential.folder_name, sequential.describe, sequential.identity, sequential.findings,
    sequential.check_users)
#: task name -> its TaskKind
TASKS: dict[str, TaskKind] = {kind.name: kind for kind in (GENERAL, SEQUENTIAL)}


def check_role(name: str, role: str) -> None:
    """A ConfigError when ``name``, given as a ``role`` (``"model"`` or ``"denoiser"``), names the other
    kind: a denoiser given as a model (it needs a backbone), or a sequential model given as a denoiser
    (Demure denoises, but as a model of its own)."""
    if role == "model" and name in DENOISERS and name not in MODELS and name != "none":
        raise ConfigError(f"{name!r} is a denoiser, not a model: give it a backbone, e.g. `--model lightgcn "
                          f"--denoiser {name}` (see `mmdenoise list models`)")
    if role == "denoiser" and name in sequential.SEQUENTIAL_MODELS:
        raise ConfigError(f"{name!r} is a sequential model, not a denoiser: train it with `--model {name}` on a "
                          "dataset with timestamps (see `mmdenoise list models`)")


def setting_keys(name: str) -> list[str]:
    """The ``--set`` keys whose last part is ``name`` (``epochs`` -> ``train.epochs``, ``n_layers`` ->
    ``model_params.n_layers``), in any run config with any registered model or denoiser, sorted: what a
    command-line option ``--epochs`` was meant to be."""
    sections = [(RunConfig, {"model_params": e.config_cls}) for e in MODELS.values()]
    sections += [(RunConfig, {"denoiser_params": e.config_cls}) for e in DENOISERS.values()]
    sections += [(SequentialRunConfig, {"model_params": e.config_cls}) for e in sequential.SEQUENTIAL_MODELS.values()]
    return sorted({key for run_cls, params in sections for key in run_keys(run_cls, params)
                   if key.rsplit(".", 1)[-1] == name})


def model_task(model: str) -> str:
    """The task of model ``model``, from its registry entry (``"general"`` for a ``MODELS`` name,
    ``"sequential"`` for a ``SEQUENTIAL_MODELS`` one); a ConfigError listing both registries otherwise."""
    entry = MODELS.get(model) or sequential.SEQUENTIAL_MODELS.get(model)
    if entry is None:
        check_role(model, "model")
        hint = did_you_mean(model, [*MODELS, *sequential.SEQUENTIAL_MODELS])
        raise ConfigError(f"unknown model {model!r}{hint}; general models: {', '.join(MODELS)}; sequential models: "
                          f"{', '.join(sequential.SEQUENTIAL_MODELS)} (see `mmdenoise list models`)")
    return entry.task


def _folder_config(path: Path) -> tuple[TaskKind, Any]:
    """The TaskKind and resolved config of the run folder ``path``: the task is its config.yaml's
    ``task`` (older sequential folders may name a model by a name that is now general's, so the name
    cannot decide)."""
    raw = read_run_config(path)
    name = raw.get("task", "general")
    if not isinstance(name, str) or name not in TASKS:
        raise RunError(f"config.yaml names task {short(name)}; tasks: {', '.join(TASKS)}")
    return TASKS[name], TASKS[name].resolve(raw)


@dataclass
class Recommendations:
    """Top-K lists of ``Run.recommend``, row j for ``users[j]``.

    users: int64 [B]; items: int64 [B, K] best first; scores: float32 [B, K]
    (the model's scores); titles: str [B, K] where the dataset folder has
    ``items.tsv``, else None. A user with fewer than K items left to
    recommend (K near the catalogue size) has item −1, score NaN and title ""
    in the places past them.
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    titles: np.ndarray | None = None

    def rows(self) -> list[dict]:
        """One dict per (user, rank): user, rank (1-based), item, score and title (None without titles);
        the −1 places of a user with fewer than K items left are not rows."""
        return [{"user": int(u), "rank": r + 1, "item": int(self.items[j, r]), "score": float(self.scores[j, r]),
                 "title": None if self.titles is None else str(self.titles[j, r])}
                for j, u in enumerate(self.users) for r in range(self.items.shape[1]) if self.items[j, r] >= 0]


@dataclass
class Run:
    """A finished (or loaded) run: its config, per-epoch history, metrics, files and trained model.

    ``backbone`` is the trained model at its best validation state (the
    sequential model for a sequential run), ``denoiser`` the general task's
    denoiser around it; ``dataset`` the data it was trained on; ``trained``
    the trainer's task holding them (what ``recommend`` scores with).
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
    trained: Any = dataclasses.field(default=None, repr=False)

    def __repr__(self) -> str:
        """One line: what ran where, on what, and how it scored on its validation metric (the dataclass's
        own repr would print the whole history and model)."""
        metric = self.config.train.valid_metric
        scores = ", ".join(f"{split} {metric} {values[metric]:.4f}" for split, values
                           in (("valid", self.valid), ("test", self.test)) if metric in values)
        where = "" if self.path is None else f"{str(self.path)!r}: "
        what = TASKS[self.task].describe(self.config)
        return (f"Run({where}{what} on {Path(self.config.dataset).name}, seed {self.config.seed}, "
                f"{len(self.history)} epoch(s); {scores})")

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
        kind, config = _folder_config(path)
        result = record.read_result(path)
        run = cls(config=config, path=path, history=record.read_metrics(path),
                  valid=result["valid"], test=result["test"], result=result)
        if model:
            run.dataset = dataset if dataset is not None else run_dataset(path, config)
            task = _restore(kind, path, run.dataset, config)
            task.model.train(False)
            run.trained, run.backbone, run.denoiser = task, task.backbone, task.denoiser
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
        import torch

        from .eval import mask_matrix
        if self.trained is None or self.dataset is None:
            raise ConfigError("this run has no model loaded; use Run.load(path) (model=True)")
        if exclude not in ("train", "all"):
            raise ConfigError(f"exclude must be 'train' or 'all', got {exclude!r}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        user_ids = check_users(users, self.dataset.n_users, self.dataset.name)
        TASKS[self.task].check_users(self.trained, user_ids)
        data = self.dataset
        if exclude == "all":
            mask = (data.interaction_matrix("train") + data.interaction_matrix("valid")
                    + data.interaction_matrix("test")).tocsr()
        else:
            mask = mask_matrix(self.trained.evaluation_data, "test", self.config.train.mask_valid_in_test)
        self.trained.model.train(False)
        with torch.no_grad():
            score_fn = self.trained.score_function()
        return rank_for_users(score_fn, mask, user_ids, int(k), data, batch_size)


def _restore(kind: TaskKind, path: Path, dataset: Dataset, config) -> Any:
    """The trainer's task of the run in ``path`` with its model at the best validation state (the
    checkpoint must have been trained on ``dataset``)."""
    best = record.load_best_state(path, dataset)
    task = kind.make_task(dataset, config)
    task.model.load_state_dict(best)
    return task


def run_dataset(run_dir: Path, config) -> Dataset:
    """The dataset a run folder's config.yaml names; a DataError naming the run and how to give the
    data when that name no longer leads to it (a moved or deleted folder)."""
    from .data.registry import DATASETS
    name = str(config.dataset)
    if name in DATASETS or Path(name).expanduser().is_dir():
        return load_dataset(name)
    raise DataError(f"{run_dir} was trained on {name!r}, which is neither a folder nor a registered dataset now; "
                    "if the data moved, give it: --dataset FOLDER (`Run.load(path, load_dataset(FOLDER))`)")


def read_run_config(path: Path) -> dict:
    """The raw ``config.yaml`` of a finished run folder; a RunError naming what is missing otherwise."""
    if path.is_file() and (path.parent / record.CONFIG_FILE).is_file():
        raise RunError(f"{path} is a file of run folder {path.parent}: give the folder")
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder")
    for name in (record.CONFIG_FILE, record.RESULT_FILE):
        if not (path / name).is_file():
            raise RunError(f"{path} is not a finished run folder (no {name}); train one with "
                           "`mmdenoise train ... --out FOLDER`")
    return load_yaml(path / record.CONFIG_FILE)


def check_users(users: Sequence[int] | np.ndarray, n_users: int, name: str) -> np.ndarray:
    """``users`` as int64 [B]; a one-line ConfigError naming the first bad id and the valid range."""
    if isinstance(users, (str, bytes)):
        raise ConfigError(f"users: expected a list of integer ids, got the text {short(users)}")
    if np.ndim(users) != 1:
        one = f" (one user: [{int(users)}])" if np.ndim(users) == 0 and isinstance(users, (int, np.integer)) else ""
        raise ConfigError(f"users: expected a list of integer ids{one}, got {short(users)}")
    array = np.asarray(users)
    if array.size == 0:
        raise ConfigError("users: give at least one user id")
    if not np.issubdtype(array.dtype, np.integer):
        raise ConfigError(f"users: ids are integers, got {array.tolist()!r}")
    bad = array[(array < 0) | (array >= n_users)]
    if bad.size:
        raise ConfigError(f"unknown user id {int(bad[0])}: {name} has user ids 0..{n_users - 1}")
    return array.astype(np.int64)


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
    top, top_scores = torch.cat(items).numpy(), torch.cat(scores).numpy()
    # places past a user's last unmasked item (k near n_items) hold masked items: −1 there; a user's
    # masked items are its distinct stored columns, as row_entries masks them
    masked = mask[users].tocsr()
    masked.sum_duplicates()
    past = np.arange(k)[None, :] >= (dataset.n_items - np.diff(masked.indptr))[:, None]
    titles = read_item_titles(dataset.path, dataset.n_items)
    titles = None if titles is None else np.where(past, "", titles[top])
    top[past], top_scores[past] = -1, np.nan
    return Recommendations(users=users, items=top, scores=top_scores, titles=titles)


def given_config(config: str | Path | Mapping[str, Any] | Any | None) -> dict:
    """The raw mapping of ``train``'s ``config``: a YAML file, a config dataclass or a mapping."""
    if isinstance(config, (str, Path)):
        return load_yaml(config)
    if dataclasses.is_dataclass(config):
        return to_dict(config)
    return dict(config or {})


def train(dataset: Dataset | str | Path | None = None, model: str | None = None,
          denoiser: str | None = None, *, seed: int | None = None,
          config: str | Path | Mapping[str, Any] | RunConfig | SequentialRunConfig | None = None,
          overrides: Sequence[str] = (), out: str | Path | None = None, resume: bool = False,
          overwrite: bool = False, progress: bool | None = None, tensorboard: bool = False) -> Run:
    """Train ``model`` (with ``denoiser``, for a general model) on ``dataset`` and return the :class:`Run`.

    dataset: a Dataset, a registered name (``"ml-100k"``) or an MMRec folder; model: a registered name.
        Both are required unless ``config`` or ``overrides`` name them, or ``resume`` reads them from ``out``.
    config: a YAML file, a mapping or a RunConfig / SequentialRunConfig;
        explicit arguments and then ``overrides`` (``["train.lr=0.01", "n_layers=3"]``) take precedence.
    out: the run folder (default ``runs/<dataset>-<model>-<denoiser>-s<seed>-<time>``, for a
        sequential model ``runs/<dataset>-seq-<model>-s<seed>-<time>``);
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
    if dataset is not None and not isinstance(dataset, (Dataset, str, Path)):
        raise ConfigError(f"train: a dataset is a Dataset, a registered name or a folder path, got {short(dataset)} "
                          f"({type(dataset).__name__})")
    if out is not None and not isinstance(out, (str, Path)):
        raise ConfigError(f"train: out is the run folder's path, got {short(out)} ({type(out).__name__})")
    given = given_config(config)
    for key, value in (("dataset", dataset), ("model", model)):  # nothing falls back to a default dataset or model
        if value is None and given.get(key) is None and _override_value(overrides, key, None) is None and not resume:
            raise ConfigError(f"train: missing the {key} (-{key[0]}/--{key}, or {key}= in Python, or a config that "
                              f"names it); see `mmdenoise list {key}s`")
    name = model if model is not None else _override_value(overrides, "model", given.get("model"))
    if name is None and resume and (Path(out) / record.CONFIG_FILE).is_file():
        name = load_yaml(Path(out) / record.CONFIG_FILE).get("model")  # a resume may name nothing
    if name is None:  # only a resume of a folder without config.yaml, which read_for_resume refuses below
        name = SequentialRunConfig.model if given.get("task") == "sequential" else RunConfig.model
    task = model_task(name) if isinstance(name, str) else "general"
    if given.get("task", task) != task:
        raise ConfigError(f"the config says task {given['task']!r}, but model {name!r} is a {task} model")
    given.pop("task", None)
    kind = TASKS[task]
    takes_denoiser = "denoiser" in {f.name for f in dataclasses.fields(kind.config_cls)}
    if not takes_denoiser and (denoiser not in (None, "none")
                               or _override_value(overrides, "denoiser", "none") != "none"):
        raise ConfigError(f"{name} is a {task} model: it takes no denoiser (Demure is the model "
                          "`demure`; denoisers wrap general models)")

    resolved = lambda raw: to_dict(kind.resolve(raw))  # noqa: E731
    stored = folder.read_for_resume(Path(out), resolved, task) if resume else None
    raw = {**(stored or {}), **given}
    if isinstance(dataset, Dataset):
        raw["dataset"] = str(dataset.path.resolve()) if dataset.path is not None else dataset.name
    elif isinstance(dataset, (str, Path)):  # a folder as an absolute path: the run folder is read from anywhere
        folder_given = Path(dataset).expanduser()
        raw["dataset"] = str(folder_given.resolve()) if folder_given.is_dir() else str(dataset)
    for key, value in (("model", model), ("denoiser", denoiser if takes_denoiser else None), ("seed", seed)):
        if value is not None:
            raw[key] = value
    if progress is not None:
        raw["train"] = {**(raw.get("train") or {}), "progress": progress}
    if resume:
        folder.check_resume_names(Path(out), raw, stored)
    run_config = kind.resolve(raw, overrides)
    resolve_device(run_config.train.device)
    run_dir = (Path(out) if out is not None
               else Path("runs") / f"{kind.folder_name(run_config)}-{time.strftime('%Y%m%d-%H%M%S')}")
    settings = to_dict(run_config)
    if resume:
        checkpoint = folder.check_resume(run_dir, settings, stored, kind.config_cls)
    else:
        folder.check_new_run(run_dir, settings, kind.config_cls, resolved, overwrite)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(run_config.dataset)
    log.info("train %s on %s (seed %d)", kind.describe(run_config), data.name, run_config.seed)
    if resume:
        record.check_fingerprint(run_dir, checkpoint, data, "resume")
    trained = kind.make_task(data, run_config)
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
            trainer = Trainer(trained, run_config.train, seed=run_config.seed, run_dir=run_dir, on_epoch=logger)
            fit = trainer.fit(resume=resume)
        finally:
            if logger is not None:
                logger.close()
        result = {
            "valid": fit.valid.metrics, "test": fit.test.metrics,
            "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run, "stopped_early": fit.stopped_early,
            "seconds_per_epoch": fit.seconds_per_epoch, "eval_seconds": fit.eval_seconds,
            "total_seconds": fit.total_seconds, "peak_rss_mb": record.peak_rss_mb(),
            "device": str(trainer.device), "dataset": record.dataset_summary(data),
            **kind.identity(run_config, trained), "versions": record.versions(),
        }
        record.write_per_user(run_dir, fit.valid, fit.test)
        result.update(kind.findings(trained, run_dir))
        record.write_result(run_dir, result)
    return Run(config=run_config, path=run_dir, history=fit.history, valid=fit.valid.metrics,
               test=fit.test.metrics, result=result, backbone=trained.backbone, denoiser=trained.denoiser,
               dataset=data, trained=trained)


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
    kind, config = _folder_config(run_dir)
    data = dataset if dataset is not None else run_dataset(run_dir, config)
    trainer = Trainer(_restore(kind, run_dir, data, config), dataclasses.replace(config.train, progress=False),
                      seed=config.seed)
    trainer.prepare()
    return trainer.evaluate(trainer.valid_evaluator), trainer.evaluate(trainer.test_evaluator)


__all__ = ["Run", "Recommendations", "train", "evaluate_run", "model_task", "resolve_config", "build",
           "TrainConfig", "TASKS", "TaskKind"]
