"""R-CE (Wang et al., "Denoising Implicit Feedback for Recommendation", WSDM'21): reweighted BCE.

Pointwise BCE on the batch's positives and sampled negatives, each term
weighted by the detached prediction of its own label raised to β: σ(s_ui)^β
for positives, (1 − σ(s_uj))^β for negatives (``losses.reweighted_bce``).
The paper writes the weight for positives (ŷ_ui^β); the released code
applies it to negatives as well, and so does this one. β = 0.2 by default.

Judgement: each positive's weight σ(s_ui)^β when last seen (low = hard =
likely noise).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import Range, setting
from ..losses import reweighted_bce
from ..models.base import Backbone, Batch
from .base import Denoiser, InteractionRecord, StepState


@dataclass
class RCEConfig:
    """beta: exponent of the detached prediction that weights each BCE term (β ≥ 0; 0 gives plain BCE)."""

    beta: float = setting(0.2, Range(min=0), symbol="β")


class RCE(Denoiser):
    """Reweighted BCE around any backbone; logs the mean positive and negative weights per batch."""

    def __init__(self, backbone: Backbone, n_interactions: int, beta: float = 0.2):
        super().__init__(backbone)
        self.beta = beta
        self.judgement = InteractionRecord(n_interactions)

    def loss(self, batch: Batch, state: StepState):
        user_emb, item_emb = self.backbone.batch_forward(batch)
        pos, neg = self.backbone.batch_scores(batch, user_emb, item_emb)
        rec, pos_weight, neg_weight = reweighted_bce(pos, neg, self.beta)
        self.judgement.update(batch.index, pos_weight)
        terms = self.loss_terms(rec, batch, user_emb, item_emb)
        total = sum(terms.values())
        terms.update(weight_pos=pos_weight.mean(), weight_neg=neg_weight.mean())
        return total, terms

    def interaction_scores(self) -> np.ndarray:
        """σ(s_ui)^β of each training positive when last seen, float32 [len(train)] (higher = cleaner)."""
        return self.judgement.scores()


def build(dataset, backbone: Backbone, config: RCEConfig) -> RCE:
    return RCE(backbone, len(dataset.train), config.beta)
