"""Popularity baseline: every user gets items ranked by training interaction count. Nothing to train."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Backbone


@dataclass
class PopularityConfig:
    """No settings."""


class Popularity(Backbone):
    """forward() -> (ones [U, 1], popularity [I, 1]), so the dot product is the item's count."""

    def __init__(self, n_users: int, item_popularity: torch.Tensor):
        super().__init__()
        self.n_users = n_users
        self.register_buffer("popularity", item_popularity.to(torch.float32).reshape(-1, 1))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.popularity.new_ones(self.n_users, 1), self.popularity


def build(dataset, config: PopularityConfig) -> Popularity:
    return Popularity(dataset.n_users, torch.from_numpy(dataset.item_popularity))
