"""The sequence view of a Dataset and the user-level protocol of Demure (paper §4.1).

Every interaction of a user, whatever split the Dataset put it in, joins one
sequence sorted by timestamp (ties by item id, then by the order of the
splits). Users are split 8:1:1 into training, validation and test **users**
under a fixed seed; a training user contributes one next-item example per
position t ≥ 1 of its sequence (target = item t, history = the up to
``max_len`` items before it); a validation or test user's first
``history_ratio`` of the sequence (⌊0.8·n⌋, clipped to 1..n−1) is its history
and the rest are its targets.

Sequences are stored once, flattened (``items`` int64 [n_total], user u's
sequence is ``items[indptr[u]:indptr[u + 1]]``), and every padded window is
cut from it by one vectorised gather (``windows``): a window is left-aligned,
oldest item first, padded with ``PAD`` (−1) after the last item, and keeps the
most recent ``max_len`` items when the history is longer.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..data.dataset import Dataset, Interactions, sorted_unique
from ..errors import DataError

PAD = -1
#: labels of ``SequenceView.user_split``
TRAIN_USER, VALID_USER, TEST_USER, UNUSED_USER = 0, 1, 2, -1
USER_SPLITS = {"train": TRAIN_USER, "valid": VALID_USER, "test": TEST_USER}


@dataclass(frozen=True, eq=False)
class SequenceView:
    """Time-ordered per-user sequences and the user-level split.

    items: int64 [n_total], every user's items in time order, users ascending.
    indptr: int64 [n_users + 1], user u's sequence is ``items[indptr[u]:indptr[u + 1]]``.
    user_split: int8 [n_users], TRAIN_USER / VALID_USER / TEST_USER, or
        UNUSED_USER for users without any interaction.
    history_len: int64 [n_users], the number of history items of a validation
        or test user; the full length for a training user.
    max_len: L, the longest history window a model sees.
    """

    n_users: int
    n_items: int
    items: np.ndarray
    indptr: np.ndarray
    user_split: np.ndarray
    history_len: np.ndarray
    max_len: int
    name: str = "sequences"

    # ------------------------------------------------------------ construction
    @classmethod
    def from_dataset(cls, dataset: Dataset, *, max_len: int = 20, history_ratio: float = 0.8,
                     user_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> "SequenceView":
        """Build the view of ``dataset`` (all three splits joined; timestamps required).

        Users with at least two interactions are shuffled under ``seed`` and
        split by ``user_ratios``: round(r_valid·n) validation and
        round(r_test·n) test users, the rest training users. A user with one
        interaction can be neither (no history and target both) and is a
        training user without examples.
        """
        where = dataset.path if dataset.path is not None else dataset.name
        if not isinstance(max_len, int) or max_len < 1:
            raise DataError(f"max_len must be a positive integer, got {max_len!r}", path=where, field="max_len")
        if not 0.0 < history_ratio < 1.0:
            raise DataError(f"history_ratio must be in (0, 1), got {history_ratio!r}", path=where,
                            field="history_ratio")
        ratios = np.asarray(user_ratios, dtype=np.float64)
        if ratios.shape != (3,) or (ratios < 0).any() or abs(ratios.sum() - 1.0) > 1e-6:
            raise DataError(f"user_ratios must be three non-negative shares summing to 1, got "
                            f"{tuple(user_ratios)!r}", path=where, field="user_ratios")
        parts = [dataset.split(s) for s in ("train", "valid", "test")]
        for split, part in zip(("train", "valid", "test"), parts):
            if part.timestamps is None:
                raise DataError(f"the sequential view orders interactions by time, but the {split} split has "
                                "no timestamps", path=where, field=f"{split}.timestamp")
        joined = Interactions.concat(parts)
        origin = np.concatenate([np.full(len(p), k, dtype=np.int8) for k, p in enumerate(parts)])
        # time order; equal timestamps by item id, then split order (stable)
        order = np.lexsort((origin, joined.items, joined.timestamps, joined.users))
        users, items = joined.users[order], joined.items[order]
        counts = np.bincount(users, minlength=dataset.n_users).astype(np.int64)
        indptr = np.zeros(dataset.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])

        user_split = np.full(dataset.n_users, UNUSED_USER, dtype=np.int8)
        user_split[counts > 0] = TRAIN_USER
        eligible = np.flatnonzero(counts >= 2)
        shuffled = eligible[np.random.default_rng(seed).permutation(eligible.size)]
        n_valid = int(round(ratios[1] * eligible.size))
        n_test = int(round(ratios[2] * eligible.size))
        user_split[shuffled[:n_valid]] = VALID_USER
        user_split[shuffled[n_valid:n_valid + n_test]] = TEST_USER

        held = user_split >= VALID_USER
        history_len = counts.copy()
        history_len[held] = np.clip(np.floor(history_ratio * counts[held] + 1e-9).astype(np.int64),
                                    1, counts[held] - 1)
        return cls(dataset.n_users, dataset.n_items, items, indptr, user_split, history_len, max_len,
                   name=dataset.name)

    # ------------------------------------------------------------------- users
    def users(self, split: str) -> np.ndarray:
        """Ascending ids of the training, validation or test users (int64)."""
        if split not in USER_SPLITS:
            raise KeyError(f"unknown user split {split!r}; splits: {tuple(USER_SPLITS)}")
        return np.flatnonzero(self.user_split == USER_SPLITS[split]).astype(np.int64)

    @property
    def lengths(self) -> np.ndarray:
        """Sequence length per user, int64 [n_users]."""
        return np.diff(self.indptr)

    # ----------------------------------------------------------------- windows
    def windows(self, users: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """History windows ending before sequence position ``ends`` (exclusive, 0-based within the user).

        users, ends: int [B]. Returns (history int64 [B, L] left-aligned,
        oldest first, PAD after the last item; lengths int64 [B] =
        min(ends, L)). One gather, no loop over users.
        """
        users = np.asarray(users, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        lengths = np.minimum(ends, self.max_len)
        first = self.indptr[users] + ends - lengths                     # flat index of the oldest kept item
        offset = np.arange(self.max_len, dtype=np.int64)
        valid = offset[None, :] < lengths[:, None]
        index = np.where(valid, first[:, None] + offset[None, :], 0)
        history = np.where(valid, self.items[index] if self.items.size else PAD, PAD)
        return history.astype(np.int64), lengths

    @cached_property
    def train_examples(self) -> tuple[np.ndarray, np.ndarray]:
        """All next-item examples of the training users: (users int64 [E], positions int64 [E]).

        Example e predicts item ``positions[e]`` (≥ 1) of user ``users[e]``'s
        sequence from the items before it; users ascending, positions ascending.
        """
        train_users = self.users("train")
        n_examples = np.maximum(self.lengths[train_users] - 1, 0)
        users = np.repeat(train_users, n_examples)
        starts = np.cumsum(n_examples) - n_examples
        positions = np.arange(users.size, dtype=np.int64) - np.repeat(starts, n_examples) + 1
        return users, positions

    def examples(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training examples ``index`` (into ``train_examples``) as padded arrays.

        Returns (users [B], history int64 [B, L], lengths [B], targets [B]).
        """
        all_users, all_positions = self.train_examples
        users, positions = all_users[index], all_positions[index]
        history, lengths = self.windows(users, positions)
        return users, history, lengths, self.items[self.indptr[users] + positions]

    def histories(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The history windows of validation/test users: (history int64 [B, L], lengths [B])."""
        users = np.asarray(users, dtype=np.int64)
        return self.windows(users, self.history_len[users])

    def targets(self, split: str) -> Interactions:
        """The held-out targets of the ``valid`` or ``test`` users (the items after the history)."""
        if split not in ("valid", "test"):
            raise KeyError(f"targets exist for the 'valid' and 'test' users, not {split!r}")
        return self._segment(self.users(split), self.history_len, self.lengths)

    def history_interactions(self) -> Interactions:
        """Every interaction a model may know of: training users' whole sequences and the full
        history (not only the last L) of validation/test users."""
        known = np.flatnonzero(self.user_split != UNUSED_USER)
        return self._segment(known, np.zeros_like(self.history_len), self.history_len)

    def _segment(self, users: np.ndarray, begin: np.ndarray, end: np.ndarray) -> Interactions:
        """Items [begin[u], end[u]) of each user in ``users`` as Interactions (no timestamps)."""
        sizes = (end - begin)[users]
        flat_users = np.repeat(users, sizes)
        starts = np.cumsum(sizes) - sizes
        offsets = np.arange(flat_users.size, dtype=np.int64) - np.repeat(starts, sizes)
        return Interactions(flat_users, self.items[self.indptr[flat_users] + begin[flat_users] + offsets])

    # ---------------------------------------------------------------- helpers
    @cached_property
    def seen_keys(self) -> np.ndarray:
        """Sorted distinct ``user * n_items + item`` keys of ``history_interactions`` (int64), for
        "not interacted" tests by binary search (Demure's replacement candidates, Eq. 9–13)."""
        return sorted_unique(self.history_interactions().keys(self.n_items))

    @cached_property
    def train_popularity(self) -> np.ndarray:
        """Occurrences of each item in the training users' sequences, int64 [n_items]."""
        users = np.repeat(np.arange(self.n_users), self.lengths)
        in_train = self.user_split[users] == TRAIN_USER
        return np.bincount(self.items[in_train], minlength=self.n_items).astype(np.int64)

    def evaluation_dataset(self) -> Dataset:
        """A Dataset the shared ``Evaluator`` reads: ``train`` = every known history (masked when
        ranking), ``valid``/``test`` = the targets of the validation/test users. No features."""
        where = self.name
        for split in ("valid", "test"):
            if not (self.user_split == USER_SPLITS[split]).any():
                raise DataError(f"no {split} users: {int((self.lengths >= 2).sum())} users have the two "
                                "interactions a held-out user needs", path=where, field="user_ratios")
        return Dataset(f"{self.name}/sequential", self.n_users, self.n_items, self.history_interactions(),
                       self.targets("valid"), self.targets("test"))

    def summary(self) -> dict:
        return {"max_len": self.max_len, "train_users": int((self.user_split == TRAIN_USER).sum()),
                "valid_users": int((self.user_split == VALID_USER).sum()),
                "test_users": int((self.user_split == TEST_USER).sum()),
                "train_examples": int(self.train_examples[0].size),
                "mean_length": float(self.lengths[self.user_split != UNUSED_USER].mean())}
