"""Negative sampling (DESIGN §3.5): one negative per positive, vectorised, seeded."""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from .dataset import Dataset

_MAX_ROUNDS = 1000


class NegativeSampler:
    """Draws items a user has not interacted with in training.

    Candidates are the items that occur in training, uniformly (MMRec's rule)
    or with probability ∝ popularity^alpha (``popularity=True``, WBPR). A draw
    that hits one of the user's training items is redrawn; only the rejected
    entries are redrawn, in rounds, so the cost is O(B) per round.
    """

    def __init__(self, dataset: Dataset, *, popularity: bool = False, alpha: float = 1.0):
        self.n_items = dataset.n_items
        self.candidates = dataset.train_items
        if popularity:
            weights = dataset.item_popularity[self.candidates].astype(np.float64) ** alpha
            self.cdf = np.cumsum(weights / weights.sum())
            self.cdf[-1] = 1.0
        else:
            self.cdf = None
        # sorted pair keys of the training set: membership by binary search
        self.train_keys = np.unique(dataset.train.keys(dataset.n_items))
        counts = np.bincount(dataset.train.users, minlength=dataset.n_users)
        # a user who saw every candidate cannot get a negative
        full = np.flatnonzero(counts >= self.candidates.size)
        self.saturated = np.zeros(dataset.n_users, dtype=bool)
        if full.size:
            seen = dataset.interaction_matrix("train")[full][:, self.candidates].sum(axis=1).A1
            self.saturated[full[seen >= self.candidates.size]] = True

    def probabilities(self) -> np.ndarray:
        """Sampling probability of each item before rejection, float64 [n_items]."""
        p = np.zeros(self.n_items)
        if self.cdf is None:
            p[self.candidates] = 1.0 / self.candidates.size
        else:
            p[self.candidates] = np.diff(np.r_[0.0, self.cdf])
        return p

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.cdf is None:
            return self.candidates[rng.integers(0, self.candidates.size, n)]
        return self.candidates[np.searchsorted(self.cdf, rng.random(n), side="right").clip(max=self.candidates.size - 1)]

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is a training interaction, bool [n]."""
        keys = users * np.int64(self.n_items) + items
        pos = np.searchsorted(self.train_keys, keys)
        pos[pos == self.train_keys.size] = 0
        return self.train_keys[pos] == keys

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One negative item per entry of ``users`` (int64 [n]) → int64 [n]."""
        users = np.asarray(users, dtype=np.int64)
        if self.saturated[users].any():
            bad = users[self.saturated[users]][0]
            raise DataError(f"user {bad} has interacted with every training item; no negative exists")
        items = self._draw(users.size, rng)
        todo = np.flatnonzero(self.is_positive(users, items))
        for _ in range(_MAX_ROUNDS):
            if todo.size == 0:
                return items
            items[todo] = self._draw(todo.size, rng)
            todo = todo[self.is_positive(users[todo], items[todo])]
        raise DataError("negative sampling did not converge (users with almost every item seen)")
