"""Helpers of the denoiser tests: a backbone whose scores are set by hand, and hand-built batches.

``ScoreTable`` scores every user's pair (u, i) as θ_i, a trainable number per
item, so a batch's positive and negative scores are exactly the values put in
(and ∂loss/∂θ_i is the loss's derivative w.r.t. that score).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from mmdenoise.models.base import Backbone, Batch


class ScoreTable(Backbone):
    """s_ui = θ_i: user embeddings are ones [U, 1] (a buffer), item embeddings θ [I, 1] (a parameter)."""

    def __init__(self, n_users: int, item_scores):
        super().__init__()
        self.register_buffer("user_ones", torch.ones(n_users, 1))
        self.item_scores = nn.Parameter(torch.as_tensor(item_scores, dtype=torch.float32).reshape(-1, 1))

    def forward(self):
        return self.user_ones, self.item_scores


def scored_batch(pos_scores, neg_scores, index=None) -> tuple[ScoreTable, Batch]:
    """A ScoreTable and a batch of one user whose positive b has score pos_scores[b] and negative neg_scores[b].

    Items 0..B−1 are the positives, B..2B−1 the negatives; index defaults to 0..B−1.
    """
    b = len(pos_scores)
    backbone = ScoreTable(1, list(pos_scores) + list(neg_scores))
    index = torch.arange(b) if index is None else torch.as_tensor(index)
    return backbone, Batch(torch.zeros(b, dtype=torch.long), torch.arange(b), torch.arange(b, 2 * b), index)


@pytest.fixture
def scored():
    """The ``scored_batch`` factory."""
    return scored_batch
