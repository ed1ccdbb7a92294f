"""The DA-MRS item representation (paper §3.2.3, Eq. 3) as a Backbone that composes any backbone.

The inner backbone gives users u and items h^id (its own ``forward``, whatever
its width: VBPR's items are [γ_i ‖ content], 2d wide, and are propagated
whole, so every view lives in the space its users score against). Each fixed
item–item graph G (one DIIG per modality, plus the IIB) propagates h^id for
L layers, LightGCN-style, keeping the last layer: h^G = Ĝ^L h^id. The item
representation is t_i = mean(h^id_i, mean_m h^m_i) over the views m ∈ M ∪ {c}
(Eq. 3); users come from the backbone alone.

Where the paper propagates the ID *ego* embeddings, this propagates the
backbone's item output: the only item embedding every backbone exposes
(identical for MF; for LightGCN the graph-smoothed ID embedding).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ...graphs import SparseOperator
from ...models.base import Backbone, Batch


def positions(rows: torch.Tensor | None, items: torch.Tensor) -> torch.Tensor:
    """Where item ids ``items`` sit in tensors holding the rows of the sorted ids ``rows`` (each item among
    them); the ids themselves when ``rows`` is None (tensors of every item)."""
    return items if rows is None else torch.searchsorted(rows, items)


class ItemViews(NamedTuple):
    """Everything DA-MRS computes from one forward pass (all [·, d], d the backbone's width).

    user: u [U, d]; item_id: h^id [I, d]; modal: {modality: h^m [n, d]};
    behaviour: h^c [n, d]; content: the mean of the graph views [n, d] (h^mm
    of Eq. 9, the second term of Eq. 3); item: t [n, d] (Eq. 3). rows: None
    when those hold every item (n = I); else the sorted distinct item ids [n]
    whose rows they hold (``at`` maps item ids to rows).
    """

    user: torch.Tensor
    item_id: torch.Tensor
    modal: dict[str, torch.Tensor]
    behaviour: torch.Tensor
    content: torch.Tensor
    item: torch.Tensor
    rows: torch.Tensor | None = None

    def graph_views(self) -> list[torch.Tensor]:
        """[h^m for m in M] + [h^c]: the views of Eq. 6, 9 and 11."""
        return [*self.modal.values(), self.behaviour]

    def at(self, items: torch.Tensor) -> torch.Tensor:
        """The rows of item ids ``items`` (each among ``rows``) in modal, behaviour, content and item."""
        return positions(self.rows, items)


class DAMRSBackbone(Backbone):
    """``inner`` with its items replaced by t (Eq. 3).

    modality_graphs: {modality: normalised DIIG, torch sparse CSR [I, I]};
    behaviour_graph: normalised IIB, sparse CSR [I, I]; both fixed (held as
    :class:`SparseOperator`, out of ``state_dict``). n_layers: L ≥ 1.
    forward() -> (u [U, d], t [I, d]). ``score``, ``full_scores``,
    ``rec_loss``, ``extra_loss``, ``regularization`` and ``epoch_start``
    delegate to ``inner`` with the embeddings they are given (the DA-MRS
    denoiser passes h^id to ``extra_loss`` and ``regularization``, the inner
    model's own outputs); ``modality_item_emb`` gives the propagated h^m.
    """

    def __init__(self, inner: Backbone, modality_graphs: dict[str, torch.Tensor],
                 behaviour_graph: torch.Tensor, n_layers: int = 1):
        super().__init__()
        if not modality_graphs:
            raise ValueError("DA-MRS needs at least one modality graph")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.inner = inner
        self.modalities = list(modality_graphs)
        # names by position: modality names need not be valid attribute names
        self.modality_graphs = nn.ModuleList(SparseOperator(g, symmetric=False) for g in modality_graphs.values())
        self.behaviour_graph = SparseOperator(behaviour_graph, symmetric=False)
        self.n_layers = n_layers

    def _propagate(self, graph: SparseOperator, h: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """Ĝ^L h [I, d], or only its ``rows`` [R, d] (the last layer restricted to them)."""
        for _ in range(self.n_layers - (rows is not None)):
            h = graph(h)
        return h if rows is None else graph.rows(h, rows)

    def views(self, rows: torch.Tensor | None = None) -> ItemViews:
        """One inner forward pass and every item view (Eq. 3); ``rows`` as in ``item_views``."""
        return self.item_views(*self.inner(), rows)

    def graph_views_of(self, item_id: torch.Tensor, rows: torch.Tensor | None = None) -> list[torch.Tensor]:
        """[h^m for m in M] + [h^c] of h^id [I, d]: each graph's propagation, [I, d] or its ``rows`` [R, d]."""
        graphs = [*self.modality_graphs, self.behaviour_graph]
        return [self._propagate(g, item_id, rows) for g in graphs]

    def item_views(self, user: torch.Tensor, item_id: torch.Tensor, rows: torch.Tensor | None = None) -> ItemViews:
        """The views (Eq. 3) of the inner outputs u [U, d], h^id [I, d]: of every item, or of ``rows`` only
        (sorted distinct item ids [R]; u and h^id stay whole), for a step whose losses read no other item
        row: the graph products then cost those rows' edges, not the whole graphs'."""
        views = self.graph_views_of(item_id, rows)
        content = views[0]
        for h in views[1:]:   # a sum, not a stacked mean: no [V, I, d] copy forward or backward
            content = content + h
        content = content / len(views)
        item = ((item_id if rows is None else item_id[rows]) + content) / 2
        return ItemViews(user, item_id, dict(zip(self.modalities, views)), views[-1], content, item, rows)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        v = self.views()
        return v.user, v.item

    def pair_scores(self, user_rows, item_rows):
        return self.inner.pair_scores(user_rows, item_rows)

    def full_scores(self, user_emb, item_emb, users, out=None):
        return self.inner.full_scores(user_emb, item_emb, users, out=out)

    def modality_item_emb(self) -> dict[str, torch.Tensor]:
        """{modality: h^m [I, d]}, the item ID embeddings propagated on that modality's DIIG."""
        return self.views().modal

    def rec_loss(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        return self.inner.rec_loss(batch, user_emb, item_emb)

    def extra_loss(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        return self.inner.extra_loss(batch, user_emb, item_emb)

    def regularization(self, batch: Batch, user_emb: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        return self.inner.regularization(batch, user_emb, item_emb)

    def epoch_start(self, epoch: int) -> None:
        self.inner.epoch_start(epoch)
