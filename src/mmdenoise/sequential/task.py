"""The sequential task for the trainer: next-item examples of a sequence view (docs/design.md, Contracts: Trainer).

An epoch is one shuffled pass over the training users' next-item examples,
each batch with ``n_negatives`` uniform negatives shared by its rows (the
sampled softmax of Eq. 6); evaluation ranks every item for each validation or
test user's history with the shared ``Evaluator`` (targets: the held-out rest
of the sequence; the whole known history is masked).
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..data.dataset import Dataset
from .models import SeqBatch
from .view import SequenceView


class SequentialTask:
    """Trains ``model`` (anything with ``loss(SeqBatch, epoch)``, ``ranking_table`` and ``full_scores``) on
    ``view``'s training users; evaluation reads the view's validation and test users (the trainer's ``Task``).

    dataset: the source Dataset (its fingerprint keys the checkpoints). ``backbone`` is the model too
    (what ``Run.backbone`` holds); ``denoiser`` is None: Demure is a model, not a denoiser.
    """

    denoiser = None

    def __init__(self, dataset: Dataset, view: SequenceView, model: nn.Module, n_negatives: int = 256):
        self.dataset, self.view, self.n_negatives = dataset, view, n_negatives
        self.model = self.backbone = model
        self.evaluation_data = view.evaluation_dataset()
        self.n_examples = int(view.train_examples[0].size)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def epoch_start(self, epoch: int) -> None:
        """Nothing: Demure's warm-up reads the epoch from ``loss``."""

    def batch(self, index: np.ndarray, negatives: np.ndarray, device: torch.device | str = "cpu") -> SeqBatch:
        """Examples ``index`` of ``view.train_examples`` and the negatives as tensors on ``device``."""
        put = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        users, history, lengths, targets = self.view.examples(index)
        return SeqBatch(put(users), put(history), put(lengths), put(targets), put(negatives))

    def batches(self, order: np.ndarray, rng: np.random.Generator, batch_size: int,
                device: torch.device) -> Iterator[SeqBatch]:
        for start in range(0, order.size, batch_size):
            negatives = rng.integers(0, self.view.n_items, self.n_negatives)
            yield self.batch(order[start:start + batch_size], negatives, device)

    def loss(self, batch: SeqBatch, epoch: int, step: int):
        return self.model.loss(batch, epoch)

    def epoch_end(self, epoch: int) -> dict:
        return {}

    def score_function(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Every item's score after each user's history window (the protocol's history for a held-out
        user, the whole sequence's last ``max_len`` items for a training user)."""
        model, view = self.model, self.view
        device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
        table = model.ranking_table(view.n_items)

        def scores(users: torch.Tensor) -> torch.Tensor:
            history, _ = view.histories(users.cpu().numpy())
            return model.full_scores(torch.from_numpy(history).to(device), table)

        return scores
