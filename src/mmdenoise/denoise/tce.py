"""T-CE (Wang et al., "Denoising Implicit Feedback for Recommendation", WSDM'21): truncated BCE.

Pointwise BCE on the batch's positives (label 1) and sampled negatives
(label 0); each batch drops the rate(t) fraction of samples with the largest
loss, where only positives can be dropped (``losses.truncated_bce``).
rate(t) = drop_rate · min(t / num_gradual, 1) over global steps t (the
released code's ``np.linspace(0, drop_rate, num_gradual)[t]`` differs from
it by a factor num_gradual / (num_gradual − 1)).

Judgement: the negated BCE of each positive the last time it was seen
(large loss = likely noise, the paper's premise).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Range, setting
from ..losses import truncated_bce
from ..models.base import Backbone, Batch
from .base import Denoiser, InteractionRecord, StepState


@dataclass
class TCEConfig:
    """drop_rate: ε_max, the final fraction of samples dropped per batch; num_gradual: steps of the linear ramp.

    Defaults from the paper / released code (drop_rate 0.2, num_gradual 30000).
    """

    drop_rate: float = setting(0.2, Range(min=0, max=1), symbol="ε_max")
    num_gradual: int = setting(30000, Range(min=0))


def drop_rate_schedule(step: int, drop_rate: float, num_gradual: int) -> float:
    """rate(t) = drop_rate · min(t / num_gradual, 1); drop_rate from the start when num_gradual is 0."""
    if num_gradual <= 0:
        return drop_rate
    return drop_rate * min(step / num_gradual, 1.0)


class TCE(Denoiser):
    """Truncated BCE around any backbone; logs the rate, kept samples and dropped positives per batch."""

    def __init__(self, backbone: Backbone, n_interactions: int, drop_rate: float = 0.2,
                 num_gradual: int = 30000):
        super().__init__(backbone)
        self.drop_rate, self.num_gradual = drop_rate, num_gradual
        self.judgement = InteractionRecord(n_interactions)

    def loss(self, batch: Batch, state: StepState):
        user_emb, item_emb = self.backbone.batch_forward(batch)
        pos, neg = self.backbone.batch_scores(batch, user_emb, item_emb)
        rate = drop_rate_schedule(state.step, self.drop_rate, self.num_gradual)
        rec, pos_loss, dropped = truncated_bce(pos, neg, rate)
        self.judgement.update(batch.index, -pos_loss)
        terms = self.loss_terms(rec, batch, user_emb, item_emb)
        total = sum(terms.values())
        n_dropped = dropped.sum()
        terms.update(drop_rate=pos.new_tensor(rate), dropped=n_dropped.to(pos.dtype),
                     kept=(2 * len(batch) - n_dropped).to(pos.dtype))
        return total, terms

    def interaction_scores(self) -> np.ndarray:
        """−BCE of each training positive when last seen, float32 [len(train)] (higher = cleaner)."""
        return self.judgement.scores()


def build(dataset, backbone: Backbone, config: TCEConfig) -> TCE:
    return TCE(backbone, len(dataset.train), config.drop_rate, config.num_gradual)
