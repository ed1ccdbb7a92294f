"""The DA-MRS objective (paper Eq. 12) around a :class:`DAMRSBackbone`.

L = L_D-BPR + λ1 L_AU + λ2 (L_AI-MM + L_AI-S) + the backbone's extra loss + its regularisation,
with every part switchable for the paper's ablations (Table 3: D-BPR off =
the backbone's native loss on t, i.e. BPR; AU off; AI off; f ≡ 1; g ≡ 0;
Table 4: AI strategies sp / mp).

Views used everywhere: the modalities and the behaviour graph, M ∪ {c} (the
paper adds c to M in §3.2.3). Judgement: f(u, i) of Eq. 6 for each training
interaction the last time it was in a batch.

Choices where the paper is silent: ŷ_n (Eq. 7) is one number per batch, the
mean of σ(u·t_j) over its negatives; AU runs over the batch's distinct users
against all items ([users, I] logits, as in the paper); AI's anchors are the
batch's distinct items (positives and negatives), each against the other
batch items as its dissimilar set; an anchor is never in its own similar or
dissimilar sets (literally, i would top its own R_i with the constant
φ(h_i, h_i) = e^{1/τ}); AI sums over the views, averages over anchors.

Cost: both alignment terms are means over the batch's distinct users (AU) and
items (AI), and each user costs a row of I logits. ``au_users`` and
``ai_anchors`` average them over a uniform random subset of that many users /
anchor items per batch instead (an unbiased estimate of the same mean, with
the full batch still the dissimilar set); 0 uses them all, as the paper.
Without AU no term reads an item row outside the batch's items and AI's
similar sets, so a step computes the graph views at those rows only
(``DAMRSBackbone.item_views``); the sets themselves, chosen every batch,
still need every item's views, without gradient.
Scale: the cosine in φ makes AI's gradient grow as 1/‖h‖, so with small
initial embeddings it can dominate the ranking loss unless λ2 is small.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ...losses.damrs import denoised_bpr, graded_contrastive, reliability, symmetric_kl
from ...models.base import Batch
from ..base import Denoiser, InteractionRecord, StepState
from .model import DAMRSBackbone, positions

#: similarities per chunk of anchors, all views together (2^24 floats = 64 MiB)
SELECTION_ELEMENTS = 1 << 24
#: user × item logits per AU chunk (2^23 floats = 32 MiB per tensor)
AU_ELEMENTS = 1 << 23


def graded_sets_from_similarity(similarities: torch.Tensor, anchors: torch.Tensor,
                                k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The multi-modal and single-modal similar sets of Eq. 11 for each view.

    similarities: cosine T^m of the anchors against every item, all views
    stacked [V, N, I] (overwritten); anchors: the anchor items' ids [N] (each is
    excluded from its own sets). T̃^m = row-softmax(T^m); R^m = T̃^m + Σ_m' T̃^m';
    multi = the top-k of R^m; single = the top-k of T̃^m (the same order as
    T^m) among the rest. Returns the item ids (multi [V, N, a], single
    [V, N, b]), a = min(k, I − 1), b = min(k, I − 1 − a).
    """
    n_items = similarities.shape[2]
    a = min(k, n_items - 1)
    b = min(k, n_items - 1 - a)
    rows = torch.arange(anchors.shape[0], device=anchors.device)
    soft = torch.softmax(similarities, dim=2)
    graded = soft.add_(soft.sum(0))  # R^m, in place of T̃^m
    graded[:, rows, anchors] = -torch.inf
    multi = torch.topk(graded, a, dim=2).indices
    similarities[:, rows, anchors] = -torch.inf
    similarities.scatter_(2, multi, -torch.inf)
    return multi, torch.topk(similarities, b, dim=2).indices


@torch.no_grad()
def graded_sets(views: Sequence[torch.Tensor], anchors: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``graded_sets_from_similarity`` of the cosines of the views h^m (each [I, d], or all stacked [V, I, d])
    between the anchors and every item, in chunks of anchors (memory O(chunk · I)).

    The cosines are the anchors' unit rows against the raw rows, scaled by the
    inverse norms afterwards ([chunk, I]), so no unit-norm copy of every item's
    row ([V, I, d]) is made.
    """
    n_views, n_items = len(views), views[0].shape[0]
    inverse = [1.0 / h.norm(dim=1).clamp_min(1e-12) for h in views]      # F.normalize's eps
    step = max(1, SELECTION_ELEMENTS // (n_items * n_views))
    chunks = []
    for index in anchors.split(step):
        similarities = views[0].new_empty(n_views, index.shape[0], n_items)
        for v, (h, scale) in enumerate(zip(views, inverse)):
            torch.mm(h[index] * scale[index, None], h.T, out=similarities[v])
            similarities[v].mul_(scale)
        chunks.append(graded_sets_from_similarity(similarities, index, k))
    return torch.cat([m for m, _ in chunks], dim=1), torch.cat([s for _, s in chunks], dim=1)


def dissimilar_mask(anchors: torch.Tensor, items: torch.Tensor, multi: torch.Tensor,
                    single: torch.Tensor) -> torch.Tensor:
    """bool [N, n]: batch item j is in the dissimilar set of anchor i (j ≠ i and j in neither similar set).

    anchors: the anchors' item ids [N]; items: the batch's sorted distinct item
    ids [n] (the anchors are among them); multi, single: [N, ·] item ids.
    """
    n = items.shape[0]
    mask = anchors[:, None] != items[None, :]
    similar = torch.cat([multi, single], dim=1)
    position = torch.searchsorted(items, similar).clamp(max=n - 1)
    in_batch = items[position] == similar
    rows = torch.arange(anchors.shape[0], device=anchors.device)[:, None].expand_as(similar)
    mask[rows[in_batch], position[in_batch]] = False
    return mask


def subsample(ids: torch.Tensor, limit: int) -> torch.Tensor:
    """``ids`` itself when ``limit`` is 0 or it has at most ``limit`` entries, else ``limit`` of them drawn
    uniformly without replacement (torch's RNG, re-seeded each epoch), in their original order."""
    if limit == 0 or ids.shape[0] <= limit:
        return ids
    keep = torch.randperm(ids.shape[0], device=ids.device)[:limit].sort().values
    return ids[keep]


class DAMRS(Denoiser):
    """DA-MRS around ``backbone`` (a :class:`DAMRSBackbone`, which the trainer evaluates: scores u·t).

    n_interactions: len(train), for the judgement record. Other arguments as
    in :class:`~mmdenoise.denoise.damrs.DAMRSConfig`.
    """

    backbone: DAMRSBackbone

    def __init__(self, backbone: DAMRSBackbone, n_interactions: int, *, alpha: float, beta: float, gamma: float,
                 dbpr: bool, use_f: bool, use_g: bool, fg_gradient: bool, au: bool, ai: bool, ai_strategy: str,
                 ai_k: int, ai_tau: float, ai_refresh: str, lambda_au: float, lambda_ai: float, au_users: int,
                 ai_anchors: int):
        super().__init__(backbone)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.dbpr, self.use_f, self.use_g, self.fg_gradient = dbpr, use_f, use_g, fg_gradient
        self.au, self.ai, self.ai_strategy, self.ai_k, self.ai_tau = au, ai, ai_strategy, ai_k, ai_tau
        self.ai_refresh = ai_refresh
        self.lambda_au, self.lambda_ai = lambda_au, lambda_ai
        self.au_users, self.ai_anchors = au_users, ai_anchors
        self.judgement = InteractionRecord(n_interactions)
        # ai_refresh == "epoch": the similar sets of every item per view, [V, I, a] and [V, I, b]
        self.register_buffer("multi_sets", None, persistent=False)
        self.register_buffer("single_sets", None, persistent=False)

    def epoch_start(self, epoch: int) -> None:
        super().epoch_start(epoch)
        if self.ai and self.ai_refresh == "epoch":
            self.refresh_sets()

    @torch.no_grad()
    def refresh_sets(self) -> None:
        """Choose every item's similar sets from the current views (``ai_refresh="epoch"``)."""
        views = self.backbone.graph_views_of(self.backbone.inner()[1])
        self.multi_sets, self.single_sets = graded_sets(views, torch.arange(views[0].shape[0],
                                                                            device=views[0].device), self.ai_k)

    def loss(self, batch: Batch, state: StepState):
        items = torch.unique(torch.cat([batch.pos_items, batch.neg_items]))
        chosen = None
        if self.au:  # AU scores sampled users against every item's content view (Eq. 9-10)
            v = self.backbone.views()
        else:        # every other term reads the batch's items and AI's similar sets only
            user, item_id = self.backbone.inner()
            rows = items
            if self.ai:
                anchors = subsample(items, self.ai_anchors)
                chosen = (anchors, *self.similar_sets(
                    anchors, lambda: self.backbone.graph_views_of(item_id.detach())))
                rows = torch.unique(torch.cat([items, chosen[1].flatten(), chosen[2].flatten()]))
            v = self.backbone.item_views(user, item_id, rows)
        graph_views = v.graph_views()
        local = replace(batch, pos_items=v.at(batch.pos_items), neg_items=v.at(batch.neg_items))  # rows of v
        pos = self.backbone.score(v.user, v.item, batch.users, local.pos_items)
        neg = self.backbone.score(v.user, v.item, batch.users, local.neg_items)
        with torch.set_grad_enabled(self.fg_gradient and self.dbpr and torch.is_grad_enabled()):
            view_scores = torch.stack([self.backbone.score(v.user, h, batch.users, local.pos_items)
                                       for h in graph_views], dim=1)
            log_f, log_g = reliability(view_scores, torch.sigmoid(neg).mean(), self.alpha, self.beta, self.gamma)
        f = log_f.detach().exp()
        self.judgement.update(batch.index, f)
        terms, stats = {}, {"f_mean": f.mean(), "g_share": torch.isfinite(log_g).to(f.dtype).mean()}
        if self.dbpr:
            used_f = log_f if self.use_f else torch.zeros_like(log_f)
            used_g = log_g if self.use_g else torch.full_like(log_g, -torch.inf)
            terms["dbpr"] = denoised_bpr(pos - neg, used_f, used_g)
            # share of the batch whose D-BPR optimum ranks the negative above the positive (g > f)
            stats["flip_share"] = (used_g > used_f).to(f.dtype).mean()
        else:
            terms["rec"] = self.backbone.rec_loss(local, v.user, v.item)
        if self.au:
            terms["au"] = self.lambda_au * self.user_alignment(v.user, v.content, v.item_id, batch.users)
        if self.ai:
            terms["ai"] = self.lambda_ai * self.item_alignment(graph_views, items, chosen, v.rows)
        inner = self.backbone.inner
        terms["extra"] = inner.extra_loss(batch, v.user, v.item_id)
        terms["reg"] = inner.regularization(batch, v.user, v.item_id)
        return sum(terms.values()), terms | stats

    def user_alignment(self, user_emb: torch.Tensor, content: torch.Tensor, item_id: torch.Tensor,
                       batch_users: torch.Tensor) -> torch.Tensor:
        """L_AU (Eq. 9–10) over the batch's distinct users (``au_users`` of them at random if set):
        P^mm from h^mm = ``content`` (the mean of the views, ``ItemViews.content``), P^id from h^id."""
        users = subsample(torch.unique(batch_users), self.au_users)

        def chunk_sum(rows: torch.Tensor, user_emb, content, item_id) -> torch.Tensor:
            return symmetric_kl(self.backbone.full_scores(user_emb, content, rows),
                                self.backbone.full_scores(user_emb, item_id, rows)) * rows.shape[0]

        # [users, I] logits in row chunks of ≤ AU_ELEMENTS, each recomputed in the backward pass
        # (activation checkpointing), so memory stays O(AU_ELEMENTS) at any number of items
        step = max(1, AU_ELEMENTS // item_id.shape[0])
        if users.shape[0] <= step:
            return chunk_sum(users, user_emb, content, item_id) / users.shape[0]
        total = sum(checkpoint(chunk_sum, rows, user_emb, content, item_id, use_reentrant=False)
                    for rows in users.split(step))
        return total / users.shape[0]

    def similar_sets(self, anchors: torch.Tensor,
                     graph_views: Callable[[], list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """The anchors' similar sets of Eq. 11 (multi [V, N, a], single [V, N, b] item ids): chosen now from
        ``graph_views()`` (every item's views, read without gradient), or the epoch's when
        ``ai_refresh="epoch"`` (then ``graph_views`` is not called)."""
        if self.ai_refresh == "epoch":
            if self.multi_sets is None:
                self.refresh_sets()
            return self.multi_sets[:, anchors], self.single_sets[:, anchors]
        with torch.no_grad():
            return graded_sets(graph_views(), anchors, self.ai_k)

    def item_alignment(self, graph_views: list[torch.Tensor], items: torch.Tensor,
                       chosen: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                       rows: torch.Tensor | None = None) -> torch.Tensor:
        """L_AI-MM + L_AI-S (Eq. 11) summed over the views, anchored on the batch's distinct items ``items``
        (sorted; ``ai_anchors`` of them at random if set), with all of ``items`` as the dissimilar pool.

        Sets are chosen against all items without gradient (chunked; every
        batch, or once per epoch with ``ai_refresh="epoch"``); φ is
        differentiated on the chosen pairs and on the anchor × batch pairs only.
        chosen: (anchors, multi, single) already drawn and chosen
        (``similar_sets``), else both happen here from ``graph_views``.
        rows: the sorted item ids whose rows ``graph_views`` hold (``ItemViews.rows``; among them every item
        this reads); None when they hold every item.
        """
        if chosen is None:
            anchors = subsample(items, self.ai_anchors)
            chosen = (anchors, *self.similar_sets(anchors, lambda: graph_views))
        anchors, multi, single = chosen
        n_views, dim = len(graph_views), graph_views[0].shape[1]
        # every row φ reads (anchors, similar sets, batch items), gathered and normalised in one pass per view:
        # a gather's backward fills a gradient as large as the view, so one gather per view, not four
        parts = [anchors.expand(n_views, -1), multi.flatten(1), single.flatten(1), items.expand(n_views, -1)]
        ids = positions(rows, torch.cat(parts, dim=1))                                  # [V, R], rows of the views
        unit = torch.stack([F.normalize(h.index_select(0, i), dim=1) for h, i in zip(graph_views, ids)])
        anchor_rows, multi_rows, single_rows, item_rows = unit.split([p.shape[1] for p in parts], dim=1)
        scaled = anchor_rows / self.ai_tau  # cos/τ, scaling [V, N, d], not [V, N, n]
        n_anchors = anchors.shape[0]
        logits = lambda r, k: (scaled[:, :, None, :] * r.view(n_views, n_anchors, k, dim)).sum(-1)  # noqa: E731
        multi_logits = logits(multi_rows, multi.shape[2])                               # [V, N, a]
        single_logits = logits(single_rows, single.shape[2])                            # [V, N, b]
        batch_logits = torch.bmm(scaled, item_rows.transpose(1, 2))                     # [V, N, n]
        mask = dissimilar_mask(anchors.repeat(n_views), items, multi.flatten(0, 1), single.flatten(0, 1))
        # the mean over (view, anchor) rows × V = Σ over views of each view's mean over anchors
        return n_views * graded_contrastive(multi_logits.flatten(0, 1), single_logits.flatten(0, 1),
                                            batch_logits.flatten(0, 1), mask, self.ai_strategy)

    def interaction_scores(self) -> np.ndarray:
        """f(u, i) (Eq. 6) of each training interaction when last seen, float32 [len(train)]
        (higher = more reliable); never-seen interactions get the mean of the seen ones."""
        return self.judgement.scores()
