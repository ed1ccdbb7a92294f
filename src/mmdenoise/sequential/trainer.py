"""The shared training loop, driven over next-item examples (DESIGN §2 Trainer, §6.4).

``SequentialTrainer`` reuses ``Trainer.fit`` unchanged (validation every
``eval_every`` epochs, best-state keeping, early stopping, checkpoints,
``--resume``, per-epoch reseeding, thread limits, determinism) and replaces
what differs: an epoch is one shuffled pass over the training users'
next-item examples with ``n_negatives`` shared uniform negatives per batch,
and evaluation ranks the whole item gallery for each validation/test user's
history with the shared ``Evaluator`` (targets = the held-out rest of the
sequence; the user's whole history is masked).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import TrainConfig
from ..data.dataset import Dataset
from ..eval import EvalResult, Evaluator
from ..training.trainer import Trainer, epoch_seed, resolve_device
from .models import SeqBatch
from .view import SequenceView


class SequentialTrainer(Trainer):
    """Trains a sequential model (anything with ``loss(SeqBatch, epoch)``, ``ranking_table`` and
    ``full_scores``) on ``view``'s training users and selects it on the validation users.

    dataset: the source Dataset (its fingerprint keys checkpoints).
    """

    def __init__(self, dataset: Dataset, view: SequenceView, model: torch.nn.Module, config: TrainConfig, *,
                 n_negatives: int = 256, seed: int = 0, run_dir: Path | None = None,
                 on_epoch: Callable[[dict], None] | None = None):
        # Trainer.__init__ builds a negative sampler and evaluators for the general task; set what fit uses
        self.dataset = dataset
        self.view = view
        self.denoiser = self.backbone = model
        self.config = config
        self.seed = seed
        self.n_negatives = n_negatives
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.on_epoch = on_epoch
        self.device = resolve_device(config.device)
        self.evaluation_data = view.evaluation_dataset()
        self.valid_evaluator = Evaluator(self.evaluation_data, "valid", config.ks, batch_size=config.eval_batch_size,
                                         metrics=config.metrics)
        self.test_evaluator = Evaluator(self.evaluation_data, "test", config.ks, batch_size=config.eval_batch_size,
                                        metrics=config.metrics)

    def make_optimizer(self) -> torch.optim.Optimizer | None:
        params = [p for p in self.denoiser.parameters() if p.requires_grad]
        if not params:
            return None
        return torch.optim.Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def detection(self):
        return None

    @torch.no_grad()
    def evaluate(self, evaluator: Evaluator, keep_ranking: bool = False) -> EvalResult:
        """Full ranking of every item for the evaluator's users from their history windows."""
        model = self.denoiser
        was_training = model.training
        model.train(False)
        table = model.ranking_table(self.view.n_items)

        def scores(users: torch.Tensor) -> torch.Tensor:
            history, _ = self.view.histories(users.cpu().numpy())
            return model.full_scores(torch.from_numpy(history).to(self.device), table)

        result = evaluator.evaluate(scores, device=self.device, keep_ranking=keep_ranking)
        model.train(was_training)
        return result

    def batch(self, index: np.ndarray, negatives: np.ndarray) -> SeqBatch:
        """Examples ``index`` of ``view.train_examples`` and the negatives as tensors on the device."""
        put = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(self.device)  # noqa: E731
        users, history, lengths, targets = self.view.examples(index)
        return SeqBatch(put(users), put(history), put(lengths), put(targets), put(negatives))

    def train_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> dict:
        """One shuffled pass over the training examples; returns the epoch means of the loss terms."""
        model = self.denoiser
        model.train()
        seed = epoch_seed(self.seed, epoch)
        torch.manual_seed(seed)   # Demure's candidate pools and replacements
        rng = np.random.default_rng(seed)
        n_examples = self.view.train_examples[0].size
        order = rng.permutation(n_examples)
        size = self.config.batch_size
        n_batches = (n_examples + size - 1) // size
        sums: dict[str, torch.Tensor] = {}
        for b in range(n_batches):
            negatives = rng.integers(0, self.view.n_items, self.n_negatives)
            batch = self.batch(order[b * size:(b + 1) * size], negatives)
            loss, terms = model.loss(batch, epoch)
            self.optimizer_step(optimizer, loss, terms, sums, epoch, b)
        return {name: float(v) / max(n_batches, 1) for name, v in sums.items()}
