"""The Denoiser contract (docs/design.md, Contracts) and ``none``, the backbone's own objective."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.sampler import NegativeSampler
from ..models.base import Backbone, Batch


@dataclass
class StepState:
    """Where training is: epoch (0-based) and global step (batches so far)."""

    epoch: int
    step: int


class Denoiser(nn.Module):
    """Owns the training objective around a backbone.

    ``loss`` returns (total loss, {term name: scalar tensor}); the trainer
    checks every term for NaN/inf and logs their epoch means. Denoisers that
    judge individual training interactions expose that judgement through
    ``interaction_scores`` (float [len(train)], higher = more likely clean),
    so noise-detection quality can be measured.
    """

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone

    def loss(self, batch: Batch, state: StepState) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def epoch_start(self, epoch: int) -> None:
        self.backbone.epoch_start(epoch)

    def epoch_end(self, epoch: int) -> None:
        """Nothing by default."""

    def interaction_scores(self) -> np.ndarray | None:
        """Per-training-interaction clean score, or None if the denoiser makes no judgement."""
        return None

    def epoch_stats(self) -> dict[str, float]:
        """Numbers about the denoiser's own state the trainer logs with each epoch (none by default)."""
        return {}

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the trainer's optimiser steps: every trainable parameter by default. Denoisers that
        train an inner model with their own optimiser (GUIDER's teacher, BOD's generator) leave it out."""
        return [p for p in self.parameters() if p.requires_grad]

    def negative_sampler(self, dataset) -> NegativeSampler:
        """Where the trainer's negatives come from: uniform over training items (WBPR overrides)."""
        return NegativeSampler(dataset)

    def loss_terms(self, rec: torch.Tensor, batch: Batch, user_emb: torch.Tensor,
                   item_emb: torch.Tensor) -> dict[str, torch.Tensor]:
        """{"rec": ``rec``, "extra": the backbone's extra loss, "reg": its regularisation}, in that
        order (their sum, in that order, is the total loss), each a scalar tensor."""
        return {"rec": rec, "extra": self.backbone.extra_loss(batch, user_emb, item_emb),
                "reg": self.backbone.regularization(batch, user_emb, item_emb)}


class InteractionRecord(nn.Module):
    """A denoiser's latest judgement of each training interaction, filled as batches pass.

    value: float32 [n] and seen: bool [n], non-persistent buffers (they move
    with ``.to`` and stay out of ``state_dict``): every epoch visits every
    training interaction, so after any full epoch the record is complete, and
    a resumed run rebuilds it exactly.
    """

    def __init__(self, n_interactions: int):
        super().__init__()
        self.register_buffer("value", torch.zeros(n_interactions), persistent=False)
        self.register_buffer("seen", torch.zeros(n_interactions, dtype=torch.bool), persistent=False)

    @torch.no_grad()
    def update(self, index: torch.Tensor, values: torch.Tensor) -> None:
        """Record ``values`` [B] for the interactions at positions ``index`` (int64 [B]) of train."""
        self.value[index] = values.detach().to(self.value.dtype)
        self.seen[index] = True

    def scores(self) -> np.ndarray:
        """float32 [n]; entries never seen get the mean of the seen ones (neutral), 0 if none was seen."""
        value = self.value.detach().to("cpu", torch.float32).numpy().copy()
        seen = self.seen.cpu().numpy()
        value[~seen] = value[seen].mean() if seen.any() else 0.0
        return value


@dataclass
class NoDenoiserConfig:
    """``none`` has no settings."""


class NoDenoiser(Denoiser):
    """The backbone's recommendation loss + its extra loss + regularisation."""

    def loss(self, batch: Batch, state: StepState):
        user_emb, item_emb = self.backbone.batch_forward(batch)
        terms = self.loss_terms(self.backbone.rec_loss(batch, user_emb, item_emb), batch, user_emb, item_emb)
        return sum(terms.values()), terms


def build_none(dataset, backbone: Backbone, config: NoDenoiserConfig) -> NoDenoiser:
    return NoDenoiser(backbone)
