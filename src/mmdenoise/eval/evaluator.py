"""Full-ranking evaluation (docs/design.md, Evaluation protocol): mask, top-k once, every metric from one hit matrix.

Per batch of users, on the device the scores come on: masked items are set to
−inf by one scatter, ``top_k_items`` ranks once at Kmax = max(ks), the hit
matrix [B, Kmax] is looked up in the sorted held-out keys, and
``ranking_metrics`` turns it into every metric. Nothing loops over users.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import scipy.sparse as sp
import torch

from ..data.dataset import Dataset
from .metrics import METRICS, ranking_metrics

DEFAULT_KS = (5, 10, 20, 50)
EVAL_SPLITS = ("valid", "test")


@dataclass
class EvalResult:
    """The outcome of one evaluation.

    metrics: ``{"recall@20": mean over evaluated users, ...}`` (every metric at every K).
    per_user: the same keys, float64 [n_eval_users], row j belongs to ``users[j]``.
    users: int64 [n_eval_users], the evaluated user ids, ascending.
    top_items: int64 [n_eval_users, min(Kmax, n_items)], each user's ranked items, only with
        ``evaluate(..., keep_ranking=True)``.
    """

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    users: np.ndarray
    top_items: np.ndarray | None = None


def top_k_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k best items of each row, by score descending then item id ascending: int64 [B, k].

    scores: float [B, I], k ≤ I. NaN counts as the highest score (``torch.topk``'s
    order), so a row with NaN has a NaN-scored item first.

    ``torch.topk`` leaves the choice and order among equal scores unspecified;
    two fixes make the result a function of the scores alone. (1) In a row
    whose k-th score equals its (k+1)-th, tied items lie on both sides of the
    cut: the m slots holding the k-th score are refilled with the m lowest-id
    items of that score (one O(I) pass over such rows, no full sort).
    (2) Rows with equal scores among their k are re-ordered by score
    descending, id ascending (id sort, then a stable score sort). Learnt float
    scores rarely need either; constant or integer scores need both.
    """
    n_rows, n_items = scores.shape
    top_scores, top_items = torch.topk(scores, min(k + 1, n_items), dim=1)   # sorted, descending
    if top_scores.shape[1] > k:
        boundary = top_scores[:, k] == top_scores[:, k - 1]
        top_scores, top_items = top_scores[:, :k], top_items[:, :k].contiguous()
        if bool(boundary.any()):
            rows = boundary.nonzero().squeeze(1)
            kth = top_scores[rows, k - 1:]
            slots = (top_scores[rows] == kth).sum(1)                  # m: the last m slots tie with kth
            tied = (scores if rows.numel() == n_rows else scores[rows]) == kth
            row, item = tied.nonzero(as_tuple=True)                   # row-major: ids ascending per row
            per_row = torch.bincount(row, minlength=rows.numel())
            order = torch.arange(row.numel(), device=scores.device) - (per_row.cumsum(0) - per_row)[row]
            keep = order < slots[row]
            row, order, item = row[keep], order[keep], item[keep]
            top_items[rows[row], k - slots[row] + order] = item
    ties = (top_scores[:, 1:] == top_scores[:, :-1]).any(dim=1)
    if bool(ties.any()):
        rows = ties.nonzero().squeeze(1)
        items = top_items[rows].sort(dim=1).values
        by_score = torch.sort(scores[rows[:, None], items], dim=1, descending=True, stable=True).indices
        top_items[rows] = items.gather(1, by_score)
    return top_items


def mask_matrix(dataset: Dataset, split: str, mask_valid_in_test: bool = False) -> sp.csr_matrix:
    """users × items CSR of the items ranked at −inf when evaluating ``split``: the training items,
    plus the validation items for ``test`` with ``mask_valid_in_test`` (the rule of ``Evaluator``)."""
    mask = dataset.interaction_matrix("train")
    if split == "test" and mask_valid_in_test:
        mask = (mask + dataset.interaction_matrix("valid")).tocsr()
    return mask


def masked_top_k(scores: torch.Tensor, rows: torch.Tensor, items: torch.Tensor, k: int) -> torch.Tensor:
    """Set ``scores[rows, items]`` to −inf in place, then rank: int64 [B, k] (``top_k_items``'s order).

    The one masking-and-ranking step of the evaluator, shared by ``Run.recommend``.
    """
    scores[rows, items] = -torch.inf
    return top_k_items(scores, k)


class ScoreBlocks:
    """Reusable score blocks for one blocked evaluation: ``take(rows, like)`` gives a float tensor
    [rows, n_items] of ``like``'s dtype and device, the same tensor every time for the same shape.

    A score function fills the block (e.g. ``Backbone.full_scores(..., out=)``) and the evaluator
    masks and ranks it before it asks for the next one, so one evaluation needs at most two blocks
    (full and last). A fresh product per block instead maps new memory each time: blocks are
    hundreds of MB, beyond what the allocator keeps, and touching that fresh memory cost 13–16% of
    a synth-baby or book-crossing evaluation (2 threads, idle). Blocks live as long as this object.
    """

    def __init__(self, n_items: int):
        self.n_items = n_items
        self._blocks: dict[tuple, torch.Tensor] = {}

    def take(self, rows: int, like: torch.Tensor) -> torch.Tensor:
        key = (rows, like.dtype, like.device)
        if key not in self._blocks:
            self._blocks[key] = like.new_empty(rows, self.n_items)
        return self._blocks[key]


@dataclass(frozen=True)
class _DeviceIndex:
    """The evaluator's index arrays on one device (see ``Evaluator.__init__``)."""

    users: torch.Tensor          # int64 [n_eval]
    mask_rows: torch.Tensor      # int64 [n_mask], position of the user in ``users``
    mask_items: torch.Tensor     # int64 [n_mask]
    relevant_keys: torch.Tensor  # int64 [n_rel], sorted position * n_items + item
    n_relevant: torch.Tensor     # int64 [n_eval], |held-out|


class Evaluator:
    """Full-ranking evaluation of the ``valid`` or ``test`` split of a dataset (docs/design.md, "Evaluation protocol").

    Evaluated users: at least one held-out item in the split and at least one
    training interaction (users without training data are not evaluated).
    Masked items (score −inf, never counted as hits): the user's training
    items, plus, for ``test`` with ``mask_valid_in_test``, the validation
    items; by default validation items stay in the test pool (MMRec's rule).
    |held-out| counts the user's distinct held-out items; a held-out item that
    is also masked (repeat interaction) stays in that count but can never be hit.

    Ties: equal scores rank by item id, lower first (``top_k_items``). Masked
    items sit at −inf, after every finitely scored item; an item that the model
    itself scores −inf ties with them and is ordered among them by id.
    K larger than n_items: the ranks past the last item hold no item, so no hit.

    All index structures are built once here (CSR rows of the evaluated users)
    and copied to a device on first use there.
    """

    def __init__(self, dataset: Dataset, split: str, ks: Iterable[int] = DEFAULT_KS,
                 mask_valid_in_test: bool = False, batch_size: int = 4096, metrics: Iterable[str] = METRICS):
        if split not in EVAL_SPLITS:
            raise ValueError(f"split must be one of {EVAL_SPLITS}, got {split!r}")
        metrics = tuple(metrics)
        if not metrics or any(m not in METRICS for m in metrics):
            raise ValueError(f"metrics must be a non-empty subset of {METRICS}, got {metrics!r}")
        self.metrics = tuple(m for m in METRICS if m in metrics)
        ks = tuple(ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
            raise ValueError(f"ks must be positive integers, got {ks!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.split = split
        self.ks = tuple(sorted({int(k) for k in ks}))
        self.k_max = self.ks[-1]
        self.batch_size = int(batch_size)
        self.n_items = dataset.n_items

        train = dataset.interaction_matrix("train")
        mask = mask_matrix(dataset, split, mask_valid_in_test)
        heldout = dataset.interaction_matrix(split)
        n_heldout = np.diff(heldout.indptr)
        self.users = np.flatnonzero((n_heldout > 0) & (np.diff(train.indptr) > 0)).astype(np.int64)
        if self.users.size == 0:
            raise ValueError(f"no user of {dataset.name!r} has both training and {split} interactions")

        n_eval = self.users.size
        mask_rows, mask_items = row_entries(mask[self.users])
        held_rows, held_items = row_entries(heldout[self.users])
        mask_keys = mask_rows * np.int64(self.n_items) + mask_items
        held_keys = held_rows * np.int64(self.n_items) + held_items
        self._mask_rows, self._mask_items = mask_rows, mask_items
        self._mask_indptr = np.searchsorted(mask_rows, np.arange(n_eval + 1))   # batch slices
        self._relevant_keys = np.sort(held_keys[~np.isin(held_keys, mask_keys)])
        self._n_relevant = n_heldout[self.users].astype(np.int64)
        self._on_device: dict[torch.device, _DeviceIndex] = {}

    def _index(self, device: torch.device) -> _DeviceIndex:
        """The index arrays on ``device`` (copied on first use, then cached)."""
        if device not in self._on_device:
            put = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
            self._on_device[device] = _DeviceIndex(put(self.users), put(self._mask_rows), put(self._mask_items),
                                                   put(self._relevant_keys), put(self._n_relevant))
        return self._on_device[device]

    @torch.no_grad()
    def evaluate(self, score_fn: Callable[[torch.Tensor], torch.Tensor],
                 device: torch.device | str | None = None, keep_ranking: bool = False,
                 scores_owned: bool = False) -> EvalResult:
        """Rank every item for every evaluated user and compute all metrics.

        score_fn(users: int64 [B]) -> scores float [B, n_items]; ``users`` are
            on ``device`` (default CPU). The scores may come on any device:
            masking, ranking and metrics run where they are. The returned
            tensor is not modified, unless ``scores_owned``.
        keep_ranking: also return every user's ranked items (``EvalResult.top_items``).
        scores_owned: nothing else reads the tensor score_fn returns once the
            next call is made (a new product per call, or a ``ScoreBlocks``
            block that the next call refills), so the training items are
            masked in it in place instead of in a copy (13–19% of a synth-baby
            evaluation). A view (e.g. an expanded score row) or a tensor that
            requires grad is still copied.
        Raises ValueError on a wrong score shape or NaN scores.
        """
        users_in = self._index(torch.device(device) if device is not None else torch.device("cpu")).users
        chunks: dict[str, list[torch.Tensor]] = defaultdict(list)
        rankings: list[torch.Tensor] = []
        for start in range(0, self.users.size, self.batch_size):
            end = min(start + self.batch_size, self.users.size)
            scores = score_fn(users_in[start:end])
            if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (end - start, self.n_items):
                shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
                raise ValueError(f"score_fn returned {shape}; expected a tensor of shape "
                                 f"({end - start}, {self.n_items}) = (batch users, n_items)")
            index = self._index(scores.device)
            # a copy unless the caller gave the tensor away: it may be a view of model state
            if not scores.is_floating_point():
                scores = scores.to(torch.float64)
            elif not (scores_owned and scores._base is None and not scores.requires_grad):
                scores = scores.clone()
            lo, hi = self._mask_indptr[start], self._mask_indptr[end]
            ranked = masked_top_k(scores, index.mask_rows[lo:hi] - start, index.mask_items[lo:hi],
                                  min(self.k_max, self.n_items))
            nan = torch.isnan(scores.gather(1, ranked[:, :1])).squeeze(1)   # topk ranks NaN first
            if bool(nan.any()):
                bad = self.users[start:end][nan.cpu().numpy()]
                raise ValueError(f"score_fn returned NaN scores for {bad.size} user(s), e.g. user ids "
                                 f"{bad[:5].tolist()}")
            if keep_ranking:
                rankings.append(ranked.cpu())
            hits = self._hits(index, start, ranked)
            for name, values in ranking_metrics(hits, index.n_relevant[start:end], self.ks).items():
                if name.partition("@")[0] in self.metrics:
                    chunks[name].append(values)
        per_user = {name: torch.cat(parts).cpu().numpy() for name, parts in chunks.items()}
        return EvalResult(metrics={name: float(v.mean()) for name, v in per_user.items()},
                          per_user=per_user, users=self.users.copy(),
                          top_items=torch.cat(rankings).numpy() if keep_ranking else None)

    def _hits(self, index: _DeviceIndex, start: int, ranked: torch.Tensor) -> torch.Tensor:
        """bool [B, Kmax]: is the item at each rank relevant? Ranks past n_items are misses."""
        positions = torch.arange(start, start + ranked.shape[0], device=ranked.device)
        query = positions[:, None] * self.n_items + ranked
        keys = index.relevant_keys
        if keys.numel() == 0:
            hits = torch.zeros_like(query, dtype=torch.bool)
        else:
            found = torch.searchsorted(keys, query).clamp_(max=keys.numel() - 1)
            hits = keys[found] == query
        if hits.shape[1] < self.k_max:
            hits = torch.cat([hits, hits.new_zeros(hits.shape[0], self.k_max - hits.shape[1])], dim=1)
        return hits


def row_entries(matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every stored entry, int64, row-major with columns ascending."""
    matrix = matrix.tocsr()
    matrix.sort_indices()
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    return rows, matrix.indices.astype(np.int64)
