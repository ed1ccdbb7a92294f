"""Full-ranking evaluation (DESIGN §4): mask, top-k once, every metric from one hit matrix."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..data.dataset import Dataset
from .metrics import ranking_metrics

DEFAULT_KS = (5, 10, 20, 50)


@dataclass
class EvalResult:
    """metrics: mean over evaluated users ({"recall@20": ...});
    per_user: the same keys, float64 [n_users_evaluated], aligned with ``users``."""

    metrics: dict[str, float]
    per_user: dict[str, np.ndarray]
    users: np.ndarray


def top_k_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The k best items per row, by score descending and then item id ascending: int64 [B, k].

    ``torch.topk`` alone leaves the choice among tied scores unspecified; rows
    whose k-th score is tied with an item left out are ranked by a full stable
    sort (rare for learnt scores, every row for popularity), the rest are
    re-ordered within their top k.
    """
    top_scores, top_items = torch.topk(scores, k, dim=1)
    kth = top_scores[:, -1:]
    tied = (scores == kth).sum(1) > (top_scores == kth).sum(1)
    if tied.any():
        rows = tied.nonzero().squeeze(1)
        ranked_scores, ranked = torch.sort(scores[rows], dim=1, descending=True, stable=True)
        top_scores[rows], top_items[rows] = ranked_scores[:, :k], ranked[:, :k]
    by_id = torch.argsort(top_items, dim=1)
    top_scores, top_items = top_scores.gather(1, by_id), top_items.gather(1, by_id)
    by_score = torch.sort(top_scores, dim=1, descending=True, stable=True).indices
    return top_items.gather(1, by_score)


class Evaluator:
    """Evaluates a scoring function on the ``valid`` or ``test`` split of a dataset.

    Evaluated users: at least one held-out item in the split and at least one
    training interaction. Masked items (score −inf): the user's training
    items, and for ``test`` with ``mask_valid_in_test`` also the validation
    items (by default they stay in the pool, as in MMRec).

    Ties: items with equal scores rank by item id, lower first (see ``top_k_items``).
    """

    def __init__(self, dataset: Dataset, split: str, *, ks=DEFAULT_KS, mask_valid_in_test: bool = False,
                 batch_size: int = 4096):
        if split not in ("valid", "test"):
            raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
        self.ks = tuple(sorted(ks))
        self.k_max = min(max(self.ks), dataset.n_items)
        self.batch_size = batch_size
        self.n_items = dataset.n_items
        train = dataset.interaction_matrix("train")
        mask = train
        if split == "test" and mask_valid_in_test:
            mask = (train + dataset.interaction_matrix("valid")).tocsr()
        heldout = dataset.interaction_matrix(split)
        n_heldout = np.diff(heldout.indptr)
        self.users = np.flatnonzero((n_heldout > 0) & (np.diff(train.indptr) > 0)).astype(np.int64)
        self._mask = mask
        self._heldout = heldout
        self._n_heldout = n_heldout
        self._batches: dict[str, list] = {}

    def _device_batches(self, device: torch.device) -> list:
        """Per user batch: (users, mask rows/cols, held-out rows/cols, |held-out|) on ``device`` (cached)."""
        key = str(device)
        if key not in self._batches:
            batches = []
            for start in range(0, self.users.size, self.batch_size):
                users = self.users[start:start + self.batch_size]
                parts = []
                for matrix in (self._mask, self._heldout):
                    sub = matrix[users]
                    rows = np.repeat(np.arange(users.size), np.diff(sub.indptr))
                    parts += [torch.from_numpy(rows).to(device), torch.from_numpy(sub.indices.astype(np.int64)).to(device)]
                batches.append((torch.from_numpy(users).to(device), *parts,
                                torch.from_numpy(self._n_heldout[users]).to(device)))
            self._batches[key] = batches
        return self._batches[key]

    @torch.no_grad()
    def evaluate(self, score_fn: Callable[[torch.Tensor], torch.Tensor],
                 device: torch.device | str = "cpu") -> EvalResult:
        """score_fn(users: int64 [B] on ``device``) -> scores [B, n_items] on ``device``."""
        per_user: dict[str, list] = {}
        for users, mask_r, mask_c, held_r, held_c, n_held in self._device_batches(torch.device(device)):
            scores = score_fn(users)
            scores = scores.float().clone()
            scores[mask_r, mask_c] = -torch.inf
            top_items = top_k_items(scores, self.k_max)
            relevant = torch.zeros_like(scores, dtype=torch.bool)
            relevant[held_r, held_c] = True
            hits = relevant.gather(1, top_items)
            for name, values in ranking_metrics(hits, n_held, self.ks).items():
                per_user.setdefault(name, []).append(values.cpu().numpy())
        arrays = {name: np.concatenate(v) for name, v in per_user.items()}
        return EvalResult(metrics={k: float(v.mean()) for k, v in arrays.items()}, per_user=arrays,
                          users=self.users.copy())
