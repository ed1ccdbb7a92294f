"""Negative sampling: one negative per given user, vectorised, seeded."""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError, DataError
from .dataset import Dataset, sorted_unique

_REJECTION_ROUNDS = 8
_EXACT_ROUNDS = 4
_FILTER_SLOTS_PER_KEY = 8
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing multiplier (2^64 / golden ratio)


class InverseCDF:
    """Draws indices from a cumulative distribution fast: x = the smallest index with cdf[x] > r.

    cdf: non-decreasing float64 [n] with cdf[-1] > 0 (the total; need not be
    1, e.g. several CDFs stacked with offsets). A guide table of
    ``bins_per_entry · n`` bins holds each bin's first candidate index; a draw
    starts there and steps forward while cdf ≤ r (about one step on average;
    the loop runs over steps, not rows), so the result equals
    ``np.searchsorted(cdf, r, side="right")``. Unlike ``np.searchsorted`` on random
    queries (~20 mispredicted branches each), the cost is a few gathers.
    """

    def __init__(self, cdf: np.ndarray, bins_per_entry: int = 4):
        self.cdf = np.asarray(cdf, dtype=np.float64)
        self.top = float(self.cdf[-1])
        n_bins = bins_per_entry * self.cdf.size
        self.scale = n_bins / self.top
        self.guide = np.searchsorted(self.cdf, np.arange(n_bins) / self.scale, side="right")

    def __call__(self, r: np.ndarray) -> np.ndarray:
        """r float64 [n] in [0, cdf[-1]) → int64 [n] indices."""
        r = np.minimum(r, np.nextafter(self.top, 0.0))  # r = top (rounding) would run off the end
        pos = self.guide[np.minimum((r * self.scale).astype(np.int64), self.guide.size - 1)]
        todo = np.flatnonzero(self.cdf[pos] <= r)
        while todo.size:  # ends: cdf[-1] = top > r
            pos[todo] += 1
            todo = todo[self.cdf[pos[todo]] <= r[todo]]
        # r · scale rounded up onto a bin edge could start one bin late: step back where needed
        back = np.flatnonzero((pos > 0) & (self.cdf[np.maximum(pos - 1, 0)] > r))
        while back.size:
            pos[back] -= 1
            back = back[(pos[back] > 0) & (self.cdf[np.maximum(pos[back] - 1, 0)] > r[back])]
        return pos


class NegativeSampler:
    """Draws, for each given user, an item the user has not interacted with in training.

    Candidates are the items that occur in training (``dataset.train_items``,
    MMRec's rule), drawn uniformly or, with ``popularity=True`` (WBPR), with
    probability ∝ popularity^alpha (``dataset.item_popularity``). A draw that
    hits one of the user's training items is redrawn; only the rejected
    entries are redrawn, for a few rounds (cost O(batch) per round). Membership
    is a binary search in the sorted training pair keys behind a one-hash
    filter (a random binary search costs ~20 mispredicted branches; the
    filter clears ~90% of queries with one gather). Entries
    still rejected after that (users who saw most of the candidate mass) are
    drawn exactly from their user's unseen candidates by a vectorised
    bisection, so sampling always ends and the result follows the
    distribution conditioned on "not a training item" either way.

    The constructor only builds lookup arrays (sorted pair keys, per-user
    offsets); nothing is drawn until ``sample``.
    """

    def __init__(self, dataset: Dataset, *, popularity: bool = False, alpha: float = 1.0):
        if popularity and not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
            raise ConfigError(f"alpha must be a finite number >= 0, got {alpha!r}")
        self.n_users, self.n_items = dataset.n_users, dataset.n_items
        self.popularity, self.alpha = popularity, float(alpha)
        self.candidates = dataset.train_items  # int64 [C], sorted
        n_cand = self.candidates.size
        if popularity:
            weights = dataset.item_popularity[self.candidates].astype(np.float64) ** self.alpha
        else:
            weights = np.ones(n_cand)
        self.weights = weights / weights.sum()  # float64 [C]
        self.cdf = np.cumsum(self.weights)
        self.cdf[-1] = 1.0
        self.inverse_cdf = InverseCDF(self.cdf)
        # the training pairs as sorted keys user * n_items + item (membership by binary search),
        # behind a one-hash filter that clears most non-members with a single gather
        self.train_keys = sorted_unique(dataset.train.keys(dataset.n_items))  # int64 [P]
        self.filter_bits = max(10, int(_FILTER_SLOTS_PER_KEY * self.train_keys.size).bit_length())
        self.key_filter = np.zeros(1 << self.filter_bits, dtype=bool)  # [≥ 8P]
        self.key_filter[self._slot(self.train_keys)] = True
        key_users = self.train_keys // self.n_items
        self.user_start = np.searchsorted(key_users, np.arange(self.n_users + 1))  # int64 [U + 1]
        # the same pairs with items as candidate positions (every training item is a candidate)
        positions = np.searchsorted(self.candidates, self.train_keys % self.n_items)
        self.position_keys = key_users * n_cand + positions  # int64 [P], sorted
        self.seen_mass = np.r_[0.0, np.cumsum(self.weights[positions])]  # float64 [P + 1]
        self.saturated = np.diff(self.user_start) >= n_cand  # bool [U]: no negative exists

    def popularity_distribution(self) -> np.ndarray:
        """Probability of drawing each item before rejection, float64 [n_items] (0 off the candidates)."""
        p = np.zeros(self.n_items)
        p[self.candidates] = self.weights
        return p

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) is a training interaction; users, items int64 [n] → bool [n]."""
        keys = users * np.int64(self.n_items) + items
        found = np.zeros(keys.size, dtype=bool)
        maybe = np.flatnonzero(self.key_filter[self._slot(keys)])  # members and ~10% of the others
        pos = np.minimum(np.searchsorted(self.train_keys, keys[maybe]), self.train_keys.size - 1)
        found[maybe] = self.train_keys[pos] == keys[maybe]
        return found

    def _slot(self, keys: np.ndarray) -> np.ndarray:
        """Filter slot of each key (Fibonacci hashing: the top bits of key · 2^64/φ), int64 [n]."""
        mixed = np.ascontiguousarray(keys, dtype=np.int64).view(np.uint64) * _GOLDEN  # wraps mod 2^64
        return (mixed >> np.uint64(64 - self.filter_bits)).view(np.int64)

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One negative item per entry of ``users`` (int [n]) → int64 [n].

        Raises DataError naming a user who has interacted with every candidate
        item (no negative exists). Deterministic given ``rng``'s state.
        """
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        if users.size and (users.min() < 0 or users.max() >= self.n_users):
            bad = users[(users < 0) | (users >= self.n_users)][0]
            raise DataError(f"user id {bad} out of range [0, {self.n_users})")
        if self.saturated[users].any():
            bad = users[self.saturated[users]][0]
            raise DataError(f"user {bad} has interacted with every one of the {self.candidates.size} "
                            "training items; no negative item exists for them")
        items = self._draw(users.size, rng)
        todo = np.flatnonzero(self.is_positive(users, items))
        for _ in range(_REJECTION_ROUNDS):
            if todo.size == 0:
                return items
            items[todo] = self._draw(todo.size, rng)
            todo = todo[self.is_positive(users[todo], items[todo])]
        for _ in range(_EXACT_ROUNDS):  # one round, unless float rounding lands on a boundary
            if todo.size == 0:
                return items
            items[todo] = self._draw_unseen(users[todo], rng)
            todo = todo[self.is_positive(users[todo], items[todo])]
        if todo.size:
            raise DataError(f"negative sampling failed for user {users[todo[0]]}")
        return items

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n candidates from the sampling distribution, int64 [n]."""
        if not self.popularity:
            return self.candidates[rng.integers(0, self.candidates.size, n)]
        return self.candidates[self.inverse_cdf(rng.random(n))]

    def _draw_unseen(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One candidate per entry from its user's unseen candidates, exactly ∝ weight; int64 [n].

        With G_u(x) = (mass of candidates ≤ x) − (mass of u's training items
        ≤ x), non-decreasing and rising only at unseen positions, the draw is
        the smallest x with G_u(x) > t for t uniform in [0, G_u(C−1)); found by
        bisection over all entries at once (⌈log2 C⌉ + 1 steps).
        """
        n_cand = self.candidates.size
        start = self.user_start[users]
        base = users * n_cand

        def unseen_mass_upto(x):
            seen_upto = np.searchsorted(self.position_keys, base + x, side="right")
            return self.cdf[x] - (self.seen_mass[seen_upto] - self.seen_mass[start])

        target = rng.random(users.size) * unseen_mass_upto(np.full(users.size, n_cand - 1))
        lo, hi = np.zeros(users.size, dtype=np.int64), np.full(users.size, n_cand - 1)
        for _ in range(n_cand.bit_length() + 1):
            mid = (lo + hi) // 2
            above = unseen_mass_upto(mid) > target
            hi = np.where(above, mid, hi)
            lo = np.where(above, lo, mid + 1)
        return self.candidates[np.minimum(lo, n_cand - 1)]
