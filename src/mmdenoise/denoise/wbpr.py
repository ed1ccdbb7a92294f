"""WBPR (Gantner et al., "Personalized Ranking for Non-Uniformly Sampled Items", KDD Cup 2011,
JMLR W&CP 18): BPR whose negatives are drawn with probability ∝ item popularity^α.

A popular item the user has not interacted with is more likely a true
negative (the user has probably seen it and passed) than a rare one, so
sampling negatives by popularity de-noises the negative side of BPR. The
trainer takes its negatives from ``negative_sampler``; the loss is plain BPR
on the backbone's scores. No per-interaction judgement.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..data.sampler import NegativeSampler
from ..config import Range, setting
from ..losses import bpr_loss
from ..models.base import Backbone, Batch
from .base import Denoiser, StepState


@dataclass
class WBPRConfig:
    """alpha: negatives drawn ∝ popularity^alpha among training items (1 = the paper's; 0 = uniform BPR)."""

    alpha: float = setting(1.0, Range(min=0))


class WBPR(Denoiser):
    """BPR on popularity-sampled negatives around any backbone."""

    def __init__(self, backbone: Backbone, alpha: float = 1.0):
        super().__init__(backbone)
        self.alpha = alpha

    def negative_sampler(self, dataset) -> NegativeSampler:
        return NegativeSampler(dataset, popularity=True, alpha=self.alpha)

    def loss(self, batch: Batch, state: StepState):
        user_emb, item_emb = self.backbone.batch_forward(batch)
        pos, neg = self.backbone.batch_scores(batch, user_emb, item_emb)
        terms = self.loss_terms(bpr_loss(pos, neg), batch, user_emb, item_emb)
        return sum(terms.values()), terms


def build(dataset, backbone: Backbone, config: WBPRConfig) -> WBPR:
    return WBPR(backbone, config.alpha)
