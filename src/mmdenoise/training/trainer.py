"""One training loop for both tasks, over a small task protocol (docs/design.md, Contracts: Trainer).

A :class:`Task` says what differs: how many training examples an epoch
shuffles and which batches they make, the loss of a batch, and the scores
evaluation ranks. ``training.general.GeneralTask`` is a denoiser around a
backbone (one negative per positive); ``sequential.task.SequentialTask`` is a
next-item model. The loop is the same for both: each epoch shuffles the
examples and steps Adam batch by batch (``step.optimizer_step``, NaN/inf
guard included); every ``eval_every`` epochs it evaluates on validation, keeps
the best state, writes the records and the checkpoint, and stops early after
``patience`` checks without improvement (never before ``min_epochs``). At the end the best-validation state
is restored and evaluated on test.

Reproducibility: the numpy generator and torch's RNG are re-seeded from
(seed, epoch) at the start of every epoch, so a run resumed from the
checkpoint of epoch e continues exactly as the uninterrupted run would.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data.dataset import Dataset
from ..errors import ConfigError, TrainingError
from ..eval import EvalResult, Evaluator
from ..log import get_logger
from . import record
from .step import NonFiniteLoss, adam, optimizer_step

log = get_logger(__name__)
#: a progress line is logged after the first epoch, then at most every this many seconds
PROGRESS_EVERY_S = 10.0


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first CUDA device if there is one, else the CPU; a ConfigError for a device
    this machine does not have (checked before a run folder is written)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index or 0) >= torch.cuda.device_count()):
        raise ConfigError(f"train.device: {name} is not available on this machine "
                          f"({torch.cuda.device_count()} CUDA device(s)); use auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device: {name} is not available on this machine; use auto or cpu")
    return device


def limit_threads(threads: int) -> None:
    """Cap torch's intra-op pool and numpy's BLAS pool (graph builds, hash fits) at ``threads``; 0 = leave.

    Several processes sharing a few cores (sweeps, studies) otherwise each
    spawn a thread per core, and spinning pools slow every process down manyfold.
    """
    if threads > 0:
        torch.set_num_threads(threads)
        threadpool_limits(threads)


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for (run seed, epoch), used for numpy and torch alike."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
               .astype(np.uint64).dot([1 << 31, 1]))


class Task(Protocol):
    """What the trainer needs of a task.

    dataset: the data trained on (its fingerprint keys the checkpoints).
    model: the module that is trained, moved to the device and saved in
        checkpoints (the denoiser, which holds the backbone; or the sequential model).
    evaluation_data: the Dataset the evaluators read (``valid``/``test`` the
        held-out targets, ``train`` what is masked when ranking).
    n_examples: training examples per epoch; the trainer shuffles their indices.
    """

    dataset: Dataset
    model: nn.Module
    evaluation_data: Dataset
    n_examples: int

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the trainer's Adam steps (an inner model with its own optimiser is left out)."""

    def epoch_start(self, epoch: int) -> None:
        """Per-epoch work before the first batch; torch's RNG is already seeded for the epoch."""

    def batches(self, order: np.ndarray, rng: np.random.Generator, batch_size: int,
                device: torch.device) -> Iterator[Any]:
        """The epoch's batches, in order: examples ``order`` (a permutation of ``n_examples``) cut into
        ``batch_size`` pieces, with any sampling drawn from ``rng``; tensors on ``device``."""

    def loss(self, batch: Any, epoch: int, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total loss, {term: scalar}) of one batch; ``step`` counts batches from the first epoch."""

    def epoch_end(self, epoch: int) -> dict[str, Any]:
        """Per-epoch work after the last batch; returns what the epoch's record adds to the loss means."""

    def score_function(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """scores(users int64 [B]) -> [B, n_items] under the current parameters (called in eval mode,
        without gradients; ``users`` on any device)."""


@dataclass
class TrainResult:
    valid: EvalResult
    test: EvalResult
    history: list[dict]
    best_epoch: int
    epochs_run: int
    seconds_per_epoch: float
    eval_seconds: float
    total_seconds: float
    stopped_early: bool
    timings: dict = field(default_factory=dict)


class Trainer:
    """Trains ``task`` under ``config`` (early stopping and selection on validation only).

    run_dir: where the records and the checkpoint go (None: keep nothing on disk).
    on_epoch: optional callback(record dict) after every epoch (e.g. TensorBoard).
    """

    def __init__(self, task: Task, config: TrainConfig, *, seed: int = 0, run_dir: Path | None = None,
                 on_epoch: Callable[[dict], None] | None = None):
        self.task = task
        self.config = config
        self.seed = seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.on_epoch = on_epoch
        self.device = resolve_device(config.device)
        data = task.evaluation_data
        self.valid_evaluator = Evaluator(data, "valid", config.ks, batch_size=config.eval_batch_size,
                                         metrics=config.metrics)
        self.test_evaluator = Evaluator(data, "test", config.ks, batch_size=config.eval_batch_size,
                                        mask_valid_in_test=config.mask_valid_in_test, metrics=config.metrics)

    # ----------------------------------------------------------------- pieces
    @torch.no_grad()
    def evaluate(self, evaluator: Evaluator, keep_ranking: bool = False) -> EvalResult:
        """Full-ranking evaluation of the task's model under its current parameters (``keep_ranking``:
        see ``Evaluator.evaluate``)."""
        model = self.task.model
        was_training = model.training
        model.train(False)  # evaluation mode: no dropout, full graphs
        result = evaluator.evaluate(self.task.score_function(), device=self.device, keep_ranking=keep_ranking,
                                    scores_owned=True)  # a product or a reused block per call
        model.train(was_training)
        return result

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        """Adam (``step.adam``) over the task's trainable parameters; None if there are none (nothing to
        learn)."""
        params = self.task.trainable_parameters()
        if not params:
            return None
        return adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def train_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> dict:
        """One shuffled pass over the training examples; returns the epoch means of the loss terms and
        what the task adds (``Task.epoch_end``)."""
        task = self.task
        task.model.train()
        seed = epoch_seed(self.seed, epoch)
        torch.manual_seed(seed)  # before any per-epoch randomness (edge pruning, teacher passes, augmentation)
        task.epoch_start(epoch)
        rng = np.random.default_rng(seed)
        order = rng.permutation(task.n_examples)
        size = self.config.batch_size
        n_batches = (order.size + size - 1) // size
        sums: dict[str, torch.Tensor] = {}
        for b, batch in enumerate(task.batches(order, rng, size, self.device)):
            loss, terms = task.loss(batch, epoch, epoch * n_batches + b)
            optimizer_step(optimizer, loss, terms, where=f"epoch {epoch}, batch {b}")
            for name, value in {"loss": loss, **terms}.items():
                sums[name] = sums.get(name, 0.0) + value.detach()
        row = {name: float(v) / max(n_batches, 1) for name, v in sums.items()}
        row.update(task.epoch_end(epoch))
        return row

    def _checkpoint_state(self, epoch, optimizer, history, best) -> dict:
        # "denoiser" names the model's state for both tasks: older run folders are read the same way
        return {"epoch": epoch, "denoiser": self.task.model.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else {},
                "history": history, "best": best, "fingerprint": self.task.dataset.fingerprint,
                "dataset": record.dataset_summary(self.task.dataset), "seed": self.seed, "finished": False}

    # ------------------------------------------------------------------- loop
    def prepare(self) -> None:
        """Threads, determinism and device placement; called by ``fit`` (and by benchmarks)."""
        limit_threads(self.config.threads)
        # multi-threaded index_put (the backward of embedding gathers) sums in a racy order otherwise
        torch.use_deterministic_algorithms(self.config.deterministic, warn_only=True)
        self.task.model.to(self.device)

    def fit(self, resume: bool = False) -> TrainResult:
        """Train up to ``config.epochs`` epochs (with ``resume``, continuing the run in ``run_dir``),
        restore the best validation state and evaluate it on validation and test."""
        cfg = self.config
        self.prepare()
        optimizer = self.make_optimizer()
        epochs = cfg.epochs if optimizer is not None else 0  # nothing to learn (popularity): evaluate only

        history: list[dict] = []
        best = {"epoch": -1, "value": -float("inf"), "bad_checks": 0, "state": None}
        start = 0
        if resume:
            start, history, best, finished = self._resume(optimizer)
            if finished:
                start = epochs

        train_times = [r["train_seconds"] for r in history]
        eval_times = [r["eval_seconds"] for r in history if "eval_seconds" in r]
        t_start = time.perf_counter()
        stopped_early = False
        # disable=None: tqdm shows the bar only on a terminal, so logs stay clean
        bar = tqdm(range(start, epochs), desc="train", unit="epoch", disable=None if cfg.progress else True,
                   initial=min(start, epochs), total=epochs, leave=False)
        if start < epochs:
            log.info("  training up to %d epochs%s (validation %s every %d, patience %d)", epochs,
                     f", resuming after epoch {start}" if start else "", cfg.valid_metric, cfg.eval_every,
                     cfg.patience)
        last_line = None
        for epoch in bar:
            t0 = time.perf_counter()
            row = {"epoch": epoch, **self._guarded_epoch(epoch, optimizer)}
            row["train_seconds"] = time.perf_counter() - t0
            train_times.append(row["train_seconds"])
            is_check = (epoch + 1) % cfg.eval_every == 0 or epoch == epochs - 1
            if is_check:
                best = self._validate(epoch, row, best)
                eval_times.append(row["eval_seconds"])
            history.append(row)
            if self.on_epoch is not None:
                self.on_epoch(row)
            self._save(epoch, optimizer, history, best, checkpoint=is_check)
            bar.set_postfix(loss=f"{row['loss']:.4f}", best=f"{best['value']:.4f}@{best['epoch'] + 1}")
            stop = is_check and best["bad_checks"] >= cfg.patience and epoch + 1 >= cfg.min_epochs
            if last_line is None or time.perf_counter() - last_line >= PROGRESS_EVERY_S or stop:
                log.info("  %s", _progress_line(row, epochs, best, cfg.valid_metric, train_times))
                last_line = time.perf_counter()
            if stop:
                stopped_early = True
                log.info("  stopped early after epoch %d: no better validation %s in %d checks",
                         epoch + 1, cfg.valid_metric, cfg.patience)
                break
        bar.close()

        if best["state"] is not None:
            self.task.model.load_state_dict(best["state"])
        t1 = time.perf_counter()
        valid = self.evaluate(self.valid_evaluator)
        eval_times.append(time.perf_counter() - t1)
        test = self.evaluate(self.test_evaluator)
        log.info("  done: test %s %.4f, %s", cfg.valid_metric, test.metrics[cfg.valid_metric],
                 f"best epoch {best['epoch'] + 1} of {len(history)}" if history else "nothing to train")
        if self.run_dir is not None:
            final_epoch = history[-1]["epoch"] if history else -1
            final = self._checkpoint_state(final_epoch, optimizer, history, best)
            final["finished"] = True
            record.save_checkpoint(self.run_dir, final)
        return TrainResult(
            valid=valid, test=test, history=history, best_epoch=best["epoch"], epochs_run=len(history),
            seconds_per_epoch=float(np.mean(train_times)) if train_times else 0.0,
            eval_seconds=float(np.mean(eval_times)) if eval_times else 0.0,
            total_seconds=time.perf_counter() - t_start, stopped_early=stopped_early)

    # ------------------------------------------------------ steps of the loop
    def _guarded_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> dict:
        """``train_epoch``; a non-finite loss anywhere in it (the task's inner loops too, such as GUIDER's
        teacher) becomes a TrainingError that also says what of the run is kept on disk."""
        try:
            return self.train_epoch(epoch, optimizer)
        except NonFiniteLoss as exc:
            kept = ""
            if self.run_dir is not None:
                kept = (f"; the best checkpoint so far is kept in {self.run_dir}"
                        if (self.run_dir / record.CHECKPOINT_FILE).exists()
                        else "; no checkpoint was written (no evaluation had finished)")
            raise TrainingError(f"{exc}{kept}") from None

    def _validate(self, epoch: int, row: dict, best: dict) -> dict:
        """Early stopping's step: evaluate on validation into ``row``; returns the new best record
        (epoch, value, checks without improvement, a CPU copy of the state when it improved)."""
        t1 = time.perf_counter()
        valid = self.evaluate(self.valid_evaluator)
        row["eval_seconds"] = time.perf_counter() - t1
        row["valid"] = valid.metrics
        value = valid.metrics[self.config.valid_metric]
        if value > best["value"]:
            return {"epoch": epoch, "value": value, "bad_checks": 0,
                    "state": _cpu_copy(self.task.model.state_dict())}
        return {**best, "bad_checks": best["bad_checks"] + 1}

    def _save(self, epoch: int, optimizer, history: list[dict], best: dict, *, checkpoint: bool) -> None:
        """Checkpointing's step: metrics.jsonl after every epoch, checkpoint.pt after every check."""
        if self.run_dir is None:
            return
        record.write_metrics(self.run_dir, history)
        if checkpoint:
            record.save_checkpoint(self.run_dir, self._checkpoint_state(epoch, optimizer, history, best))

    def _resume(self, optimizer):
        if self.run_dir is None or not (self.run_dir / record.CHECKPOINT_FILE).exists():
            raise TrainingError(f"cannot resume: no {record.CHECKPOINT_FILE} in {self.run_dir}")
        state = record.load_checkpoint(self.run_dir)
        record.check_fingerprint(self.run_dir, state, self.task.dataset, "resume")
        self.task.model.load_state_dict(state["denoiser"])
        if optimizer is not None and state["optimizer"]:
            optimizer.load_state_dict(state["optimizer"])
        history = [r for r in state["history"] if r["epoch"] <= state["epoch"]]
        return state["epoch"] + 1, history, state["best"], bool(state.get("finished", False))


def _progress_line(row: dict, epochs: int, best: dict, metric: str, train_times: list[float]) -> str:
    """One human-readable progress line; epochs are counted from 1 here (``row["epoch"]`` is 0-based)."""
    parts = [f"epoch {row['epoch'] + 1}/{epochs}", f"loss {row['loss']:.4f}"]
    if "valid" in row:
        parts.append(f"valid {metric} {row['valid'][metric]:.4f}")
    if best["epoch"] >= 0:
        parts.append(f"best {best['value']:.4f} at epoch {best['epoch'] + 1}")
    parts.append(f"{float(np.mean(train_times)):.2f} s/epoch")
    return ", ".join(parts)


def _cpu_copy(state: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else copy.deepcopy(v)
            for k, v in state.items()}
