"""The Backbone contract (docs/design.md, Contracts) and the training batch."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..losses import bpr_loss, l2_regularization


@dataclass
class Batch:
    """A batch of training triples (u, i, j): i a training positive, j a sampled negative.

    users, pos_items, neg_items: int64 [B] on the model's device.
    index: int64 [B], position of each (u, i) in ``Dataset.train`` (for
        per-interaction judgements of denoisers).
    """

    users: torch.Tensor
    pos_items: torch.Tensor
    neg_items: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return int(self.users.shape[0])


def id_embeddings(n_users: int, n_items: int, dim: int) -> tuple[nn.Embedding, nn.Embedding]:
    """User [n_users, dim] and item [n_items, dim] ID embedding tables, Xavier-uniform initialised.

    Both tables are created before either is initialised, so the global RNG is
    drawn in the same order by every backbone that uses them.
    """
    users, items = nn.Embedding(n_users, dim), nn.Embedding(n_items, dim)
    nn.init.xavier_uniform_(users.weight)
    nn.init.xavier_uniform_(items.weight)
    return users, items


class Backbone(nn.Module):
    """A recommender that turns ids (+ features, graphs) into embeddings and scores.

    Subclasses implement ``forward`` and may override any other method.
    Device comes from the module's parameters and buffers; no device is
    hard-coded anywhere in a model.
    """

    #: L2 weight on the embeddings a batch uses (subclasses set it in __init__).
    reg_weight: float = 0.0

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All embeddings under the current parameters: (user_emb [U, d], item_emb [I, d])."""
        raise NotImplementedError

    def batch_forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings for one training step: (user_emb [U, d], item_emb [I, d]) whose rows of the batch's
        users, positives and negatives equal ``forward()``'s; other rows may hold anything (zeros).

        A batch's losses read only those rows, so a model whose item rows are independent of each other
        (VBPR's per-item feature projection) computes just the batch's; the default is ``forward()``.
        """
        return self()

    def pair_scores(self, user_rows: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        """Scores of row pairs (user_rows[b], item_rows[b]), both [B, d]: [B] (the dot product)."""
        return (user_rows * item_rows).sum(-1)

    def score(self, user_emb: torch.Tensor, item_emb: torch.Tensor,
              users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of pairs (users[b], items[b]): [B]."""
        return self.pair_scores(user_emb[users], item_emb[items])

    def full_scores(self, user_emb: torch.Tensor, item_emb: torch.Tensor,
                    users: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of ``users`` against every item: [B, I], a new tensor or ``out`` (float [B, I]) filled
        in place, which only works without gradients (evaluation; it masks the scores in place, and
        an override returning a view of stored state is copied first)."""
        return torch.mm(user_emb[users], item_emb.T, out=out)

    def modality_item_emb(self) -> dict[str, torch.Tensor]:
        """Per-modality item views {modality: [I, d]}; empty for ID-only models."""
        return {}

    def batch_scores(self, batch: Batch, user_emb: torch.Tensor,
                     item_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of the batch's (user, positive) and (user, negative) pairs: ([B], [B]).

        Each table is gathered once (users; positives and negatives together): the backward pass of
        every gather writes a gradient as large as the whole table, so two gathers of the item table
        cost two [I, d] fills and a sum where one costs one (MF's step on book-crossing, whose 36k
        items make that the largest part of it).
        """
        users = user_emb[batch.users]
        positives, negatives = item_emb[torch.cat([batch.pos_items, batch.neg_items])].split(len(batch))
        return self.pair_scores(users, positives), self.pair_scores(users, negatives)

    def rec_loss(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """The model's native recommendation objective (BPR by default)."""
        return bpr_loss(*self.batch_scores(batch, user_emb, item_emb))

    def extra_loss(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """The model's own auxiliary / self-supervised terms (0 by default)."""
        return user_emb.new_zeros(())

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """Weight decay on the batch's embeddings (0 unless ``reg_weight`` > 0)."""
        return user_emb.new_zeros(())

    def batch_l2(self, batch: Batch, user_rows: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        """reg_weight · ½ Σ‖e‖² / B over the rows of ``user_rows`` [U, d] and ``item_rows`` [I, d]
        that the batch uses (user, positive, negative); 0 when ``reg_weight`` is 0. One gather per
        table (see ``batch_scores``)."""
        if self.reg_weight == 0:
            return user_rows.new_zeros(())
        return self.reg_weight * l2_regularization(user_rows[batch.users],
                                                   item_rows[torch.cat([batch.pos_items, batch.neg_items])])

    def epoch_start(self, epoch: int) -> None:
        """Per-epoch state (e.g. FREEDOM's edge pruning); nothing by default."""

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")
