"""One training loop for every backbone × denoiser (DESIGN §2 Trainer, §4).

Each epoch: shuffle the training interactions, draw one negative per
positive, run the denoiser's loss batch by batch with Adam; every
``eval_every`` epochs evaluate on validation, keep the best state, checkpoint
and early-stop after ``patience`` checks without improvement. At the end the
best-validation state is restored and evaluated on test.

Reproducibility: the numpy generator and torch's RNG are re-seeded from
(seed, epoch) at the start of every epoch, so a run resumed from the
checkpoint of epoch e continues exactly as the uninterrupted run would.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data.dataset import Dataset
from ..data.sampler import NegativeSampler
from ..denoise.base import Denoiser, StepState
from ..errors import ConfigError, TrainingError
from ..eval import EvalResult, Evaluator, detection_metrics
from ..log import get_logger
from ..models.base import Batch
from . import record

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
    """Trains ``denoiser`` (which holds the backbone) on ``dataset``.

    run_dir: where the checkpoint and records go (None: keep nothing on disk).
    sampler: negatives; default the denoiser's (uniform over training items,
        popularity-weighted for WBPR; DESIGN §3.5).
    on_epoch: optional callback(record dict) after every epoch (e.g. TensorBoard).
    """

    def __init__(self, dataset: Dataset, denoiser: Denoiser, config: TrainConfig, *, seed: int = 0,
                 run_dir: Path | None = None, sampler: NegativeSampler | None = None,
                 on_epoch: Callable[[dict], None] | None = None):
        self.dataset = dataset
        self.denoiser = denoiser
        self.backbone = denoiser.backbone
        self.config = config
        self.seed = seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.sampler = sampler if sampler is not None else denoiser.negative_sampler(dataset)
        self.on_epoch = on_epoch
        self.device = resolve_device(config.device)
        self.valid_evaluator = Evaluator(dataset, "valid", config.ks, batch_size=config.eval_batch_size,
                                         metrics=config.metrics)
        self.test_evaluator = Evaluator(dataset, "test", config.ks, batch_size=config.eval_batch_size,
                                        mask_valid_in_test=config.mask_valid_in_test, metrics=config.metrics)

    # ----------------------------------------------------------------- pieces
    @torch.no_grad()
    def evaluate(self, evaluator: Evaluator, keep_ranking: bool = False) -> EvalResult:
        """Full-ranking evaluation of the backbone under its current parameters (``keep_ranking``: see
        ``Evaluator.evaluate``)."""
        was_training = self.denoiser.training
        self.denoiser.train(False)  # evaluation mode: no dropout, full graphs
        user_emb, item_emb = self.backbone()
        result = evaluator.evaluate(lambda users: self.backbone.full_scores(user_emb, item_emb, users),
                                    device=self.device, keep_ranking=keep_ranking)
        self.denoiser.train(was_training)
        return result

    def _epoch_batches(self, epoch: int):
        """Shuffled (users, positives, negatives, index) tensors of one epoch, on the device."""
        rng = np.random.default_rng(epoch_seed(self.seed, epoch))
        train = self.dataset.train
        order = rng.permutation(len(train))
        users = train.users[order]
        negatives = self.sampler.sample(users, rng)
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        return as_tensor(users), as_tensor(train.items[order]), as_tensor(negatives), as_tensor(order)

    def _check_finite(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], epoch: int, batch: int):
        if torch.isfinite(loss):
            return
        bad = [f"{name}={float(v.detach()):.4g}" for name, v in terms.items() if not torch.isfinite(v).all()]
        where = f"epoch {epoch}, batch {batch}"
        kept = ""
        if self.run_dir is not None:
            kept = (f"; the best checkpoint so far is kept in {self.run_dir}"
                    if (self.run_dir / record.CHECKPOINT_FILE).exists()
                    else "; no checkpoint was written (no evaluation had finished)")
        raise TrainingError(f"non-finite loss at {where}: loss term(s) {', '.join(bad) or 'total'}{kept}")

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        """Adam over the denoiser's trainable parameters (backbone included); None if there are none."""
        params = self.denoiser.trainable_parameters()
        if not params:
            return None
        return torch.optim.Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def train_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> dict:
        """One pass over the training interactions; returns the epoch means of the loss terms."""
        self.denoiser.train()
        torch.manual_seed(epoch_seed(self.seed, epoch))  # before any per-epoch randomness (edge pruning)
        self.denoiser.epoch_start(epoch)
        users, pos, neg, index = self._epoch_batches(epoch)
        size = self.config.batch_size
        n_batches = (users.shape[0] + size - 1) // size
        sums: dict[str, torch.Tensor] = {}
        for b in range(n_batches):
            sl = slice(b * size, (b + 1) * size)
            batch = Batch(users[sl], pos[sl], neg[sl], index[sl])
            loss, terms = self.denoiser.loss(batch, StepState(epoch, epoch * n_batches + b))
            self.optimizer_step(optimizer, loss, terms, sums, epoch, b)
        self.denoiser.epoch_end(epoch)
        row = {name: float(v) / max(n_batches, 1) for name, v in sums.items()}
        row.update(self.denoiser.epoch_stats())
        detection = self.detection()
        if detection is not None:
            row["detection"] = detection
        return row

    def optimizer_step(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, terms: dict[str, torch.Tensor],
                       sums: dict[str, torch.Tensor], epoch: int, batch: int) -> None:
        """Check the batch's loss is finite, take one optimiser step, add loss and terms to ``sums``."""
        self._check_finite(loss, terms, epoch, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for name, value in {"loss": loss, **terms}.items():
            sums[name] = sums.get(name, 0.0) + value.detach()

    def detection(self) -> dict[str, float] | None:
        """ROC-AUC and precision@|noise| of the denoiser's judgement against the planted noise mask
        (DESIGN §7); None without a mask, without injected interactions or without a judgement."""
        noise = self.dataset.noise
        if noise is None or not noise.noisy_interactions.any():
            return None
        scores = self.denoiser.interaction_scores()
        if scores is None:
            return None
        return detection_metrics(scores, noise.noisy_interactions)

    def _checkpoint_state(self, epoch, optimizer, history, best) -> dict:
        return {"epoch": epoch, "denoiser": self.denoiser.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else {},
                "history": history, "best": best, "fingerprint": self.dataset.fingerprint,
                "dataset": record.dataset_summary(self.dataset),
                "seed": self.seed, "finished": False}

    # ------------------------------------------------------------------- loop
    def prepare(self) -> None:
        """Threads, determinism and device placement; called by ``fit`` (and by benchmarks)."""
        limit_threads(self.config.threads)
        # multi-threaded index_put (the backward of embedding gathers) sums in a racy order otherwise
        torch.use_deterministic_algorithms(self.config.deterministic, warn_only=True)
        self.denoiser.to(self.device)

    def fit(self, resume: bool = False) -> TrainResult:
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
            row = {"epoch": epoch, **self.train_epoch(epoch, optimizer)}
            row["train_seconds"] = time.perf_counter() - t0
            train_times.append(row["train_seconds"])
            is_check = (epoch + 1) % cfg.eval_every == 0 or epoch == epochs - 1
            if is_check:
                t1 = time.perf_counter()
                valid = self.evaluate(self.valid_evaluator)
                row["eval_seconds"] = time.perf_counter() - t1
                eval_times.append(row["eval_seconds"])
                row["valid"] = valid.metrics
                value = valid.metrics[cfg.valid_metric]
                if value > best["value"]:
                    best = {"epoch": epoch, "value": value, "bad_checks": 0,
                            "state": _cpu_copy(self.denoiser.state_dict())}
                else:
                    best["bad_checks"] += 1
            history.append(row)
            if self.on_epoch is not None:
                self.on_epoch(row)
            if self.run_dir is not None:
                record.write_metrics(self.run_dir, history)
                if is_check:
                    record.save_checkpoint(self.run_dir, self._checkpoint_state(epoch, optimizer, history, best))
            bar.set_postfix(loss=f"{row['loss']:.4f}", best=f"{best['value']:.4f}@{best['epoch'] + 1}")
            stop = is_check and best["bad_checks"] >= cfg.patience
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
            self.denoiser.load_state_dict(best["state"])
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

    def _resume(self, optimizer):
        if self.run_dir is None or not (self.run_dir / record.CHECKPOINT_FILE).exists():
            raise TrainingError(f"cannot resume: no {record.CHECKPOINT_FILE} in {self.run_dir}")
        state = record.load_checkpoint(self.run_dir)
        record.check_fingerprint(self.run_dir, state, self.dataset, "resume")
        self.denoiser.load_state_dict(state["denoiser"])
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
