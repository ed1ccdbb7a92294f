"""Most-popular baseline: every user gets the items ranked by training interaction count.

Not personalised and not trained (no parameters), it is the floor every
backbone must beat and the reference for popularity bias.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Backbone


@dataclass
class PopularityConfig:
    """No settings."""


class Popularity(Backbone):
    """item_popularity: [I] training interaction counts (any numeric dtype; stored as float [I, 1]).

    forward() -> (ones [U, 1], popularity [I, 1]), so the default dot-product
    ``score``/``full_scores`` give s_ui = count(i) for every user. The counts
    are a buffer (moves with ``.to``, saved in ``state_dict``). rec_loss works
    but has no gradient: there is nothing to train.
    """

    def __init__(self, n_users: int, item_popularity: torch.Tensor):
        super().__init__()
        if item_popularity.ndim != 1:
            raise ValueError(f"item_popularity must be [n_items], got shape {tuple(item_popularity.shape)}")
        self.n_users = n_users
        self.register_buffer("popularity", item_popularity.to(torch.float32).reshape(-1, 1))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.popularity.new_ones(self.n_users, 1), self.popularity


def build(dataset, config: PopularityConfig) -> Popularity:
    """Popularity from ``dataset.item_popularity`` (training split only)."""
    return Popularity(dataset.n_users, torch.from_numpy(dataset.item_popularity))
