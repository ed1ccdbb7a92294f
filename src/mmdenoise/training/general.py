"""The general task for the trainer: a denoiser around a backbone on a user-item dataset (docs/design.md, Contracts).

An epoch is every training interaction once, shuffled, each with one negative
from the denoiser's sampler; a batch's loss is the denoiser's; evaluation ranks
the backbone's scores of every item.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..data.dataset import Dataset
from ..data.sampler import NegativeSampler
from ..denoise.base import Denoiser, StepState
from ..eval import ScoreBlocks, detection_metrics
from ..models.base import Batch


class GeneralTask:
    """Trains ``denoiser`` (which holds the backbone) on ``dataset`` (the trainer's ``Task``).

    sampler: negatives; default the denoiser's (uniform over training items,
        popularity-weighted for WBPR).
    """

    def __init__(self, dataset: Dataset, denoiser: Denoiser, sampler: NegativeSampler | None = None):
        self.dataset = self.evaluation_data = dataset
        self.denoiser = self.model = denoiser
        self.backbone = denoiser.backbone
        self.sampler = sampler if sampler is not None else denoiser.negative_sampler(dataset)
        self.n_examples = len(dataset.train)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return self.denoiser.trainable_parameters()

    def epoch_start(self, epoch: int) -> None:
        self.denoiser.epoch_start(epoch)

    def batches(self, order: np.ndarray, rng: np.random.Generator, batch_size: int,
                device: torch.device) -> Iterator[Batch]:
        """(users, positives, negatives, index) of the interactions ``order``, negatives drawn for the
        whole epoch at once, moved to ``device`` once and cut into batches."""
        train = self.dataset.train
        users = train.users[order]
        negatives = self.sampler.sample(users, rng)
        as_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        users, pos, neg, index = as_tensor(users), as_tensor(train.items[order]), as_tensor(negatives), \
            as_tensor(order)
        for start in range(0, order.size, batch_size):
            sl = slice(start, start + batch_size)
            yield Batch(users[sl], pos[sl], neg[sl], index[sl])

    def loss(self, batch: Batch, epoch: int, step: int):
        return self.denoiser.loss(batch, StepState(epoch, step))

    def epoch_end(self, epoch: int) -> dict:
        """The denoiser's own numbers (``epoch_stats``) and, on planted noise, its detection quality."""
        self.denoiser.epoch_end(epoch)
        row = dict(self.denoiser.epoch_stats())
        detection = self.detection()
        if detection is not None:
            row["detection"] = detection
        return row

    def detection(self) -> dict[str, float] | None:
        """ROC-AUC and precision@|noise| of the denoiser's judgement against the planted noise mask
        (the run record's ``detection``); None without a mask, without injected interactions or without a judgement."""
        noise = self.dataset.noise
        if noise is None or not noise.noisy_interactions.any():
            return None
        scores = self.denoiser.interaction_scores()
        if scores is None:
            return None
        return detection_metrics(scores, noise.noisy_interactions)

    def score_function(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The backbone's scores of every item: all embeddings computed once, then one product per block,
        written into a block reused by the next call (``ScoreBlocks``)."""
        backbone = self.backbone
        user_emb, item_emb = backbone()
        device = user_emb.device
        blocks = ScoreBlocks(item_emb.shape[0])
        return lambda users: backbone.full_scores(user_emb, item_emb, users.to(device),
                                                  out=blocks.take(users.numel(), user_emb))
