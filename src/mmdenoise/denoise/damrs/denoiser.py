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
batch's distinct items (positives and negatives), an anchor is never in its
own similar or dissimilar sets (literally, i would top its own R_i with the
constant φ(h_i, h_i) = e^{1/τ}); AI sums over the views, averages over anchors.
Scale: the cosine in φ makes AI's gradient grow as 1/‖h‖, so with small
initial embeddings it can dominate the ranking loss unless λ2 is small.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ...losses.damrs import denoised_bpr, graded_contrastive, reliability, symmetric_kl
from ...models.base import Batch
from ..base import Denoiser, InteractionRecord, StepState
from .model import DAMRSBackbone

#: similarities per chunk of anchors, all views together (2^24 floats = 64 MiB)
SELECTION_ELEMENTS = 1 << 24
#: user × item logits per AU chunk (2^23 floats = 32 MiB per tensor)
AU_ELEMENTS = 1 << 23


def graded_sets_from_similarity(similarities: list[torch.Tensor], anchors: torch.Tensor,
                                k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The multi-modal and single-modal similar sets of Eq. 11 for each view.

    similarities: per view m, cosine T^m of the anchors against every item [N, I];
    anchors: the anchor items' ids [N] (each is excluded from its own sets).
    T̃^m = row-softmax(T^m); R^m = T̃^m + Σ_m' T̃^m'; multi = the top-k of R^m;
    single = the top-k of T̃^m among the rest. Returns per view
    (multi [N, a], single [N, b]) item ids, a = min(k, I − 1),
    b = min(k, I − 1 − a).
    """
    n_items = similarities[0].shape[1]
    a = min(k, n_items - 1)
    b = min(k, n_items - 1 - a)
    rows = torch.arange(anchors.shape[0], device=anchors.device)
    soft = [torch.softmax(s, dim=1) for s in similarities]
    total = torch.stack(soft).sum(0)
    sets = []
    for s in soft:
        graded = s + total
        graded[rows, anchors] = -torch.inf
        multi = torch.topk(graded, a, dim=1).indices
        rest = s.clone()
        rest[rows, anchors] = -torch.inf
        rest.scatter_(1, multi, -torch.inf)
        sets.append((multi, torch.topk(rest, b, dim=1).indices))
    return sets


@torch.no_grad()
def graded_sets(unit_views: list[torch.Tensor], anchors: torch.Tensor,
                k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``graded_sets_from_similarity`` for unit-norm views [I, d], in chunks of anchors (memory O(chunk · I))."""
    n_items = unit_views[0].shape[0]
    step = max(1, SELECTION_ELEMENTS // (n_items * len(unit_views)))
    chunks = []
    for start in range(0, anchors.shape[0], step):
        index = anchors[start:start + step]
        chunks.append(graded_sets_from_similarity([h[index] @ h.T for h in unit_views], index, k))
    return [(torch.cat([c[m][0] for c in chunks]), torch.cat([c[m][1] for c in chunks]))
            for m in range(len(unit_views))]


def dissimilar_mask(anchors: torch.Tensor, multi: torch.Tensor, single: torch.Tensor) -> torch.Tensor:
    """bool [N, N]: anchor j is in the dissimilar set of anchor i (j ≠ i and j in neither similar set).

    anchors: sorted distinct item ids [N] (the batch's items); multi, single: [N, ·] item ids.
    """
    n = anchors.shape[0]
    mask = ~torch.eye(n, dtype=torch.bool, device=anchors.device)
    similar = torch.cat([multi, single], dim=1)
    position = torch.searchsorted(anchors, similar).clamp(max=n - 1)
    in_batch = anchors[position] == similar
    rows = torch.arange(n, device=anchors.device)[:, None].expand_as(similar)
    mask[rows[in_batch], position[in_batch]] = False
    return mask


class DAMRS(Denoiser):
    """DA-MRS around ``backbone`` (a :class:`DAMRSBackbone`, which the trainer evaluates: scores u·t).

    n_interactions: len(train), for the judgement record. Other arguments as
    in :class:`~mmdenoise.denoise.damrs.DAMRSConfig`.
    """

    backbone: DAMRSBackbone

    def __init__(self, backbone: DAMRSBackbone, n_interactions: int, *, alpha: float = 1.5, beta: float = 1.5,
                 gamma: float = 1.0, dbpr: bool = True, use_f: bool = True, use_g: bool = True,
                 au: bool = True, ai: bool = True, ai_strategy: str = "full", ai_k: int = 10,
                 ai_tau: float = 0.2, ai_refresh: str = "batch", lambda_au: float = 0.1, lambda_ai: float = 0.1):
        super().__init__(backbone)
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.dbpr, self.use_f, self.use_g = dbpr, use_f, use_g
        self.au, self.ai, self.ai_strategy, self.ai_k, self.ai_tau = au, ai, ai_strategy, ai_k, ai_tau
        self.ai_refresh = ai_refresh
        self.lambda_au, self.lambda_ai = lambda_au, lambda_ai
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
        units = [F.normalize(h, dim=1) for h in self.backbone.views().graph_views()]
        sets = graded_sets(units, torch.arange(units[0].shape[0], device=units[0].device), self.ai_k)
        self.multi_sets = torch.stack([multi for multi, _ in sets])
        self.single_sets = torch.stack([single for _, single in sets])

    def loss(self, batch: Batch, state: StepState):
        v = self.backbone.views()
        graph_views = v.graph_views()
        pos = self.backbone.score(v.user, v.item, batch.users, batch.pos_items)
        neg = self.backbone.score(v.user, v.item, batch.users, batch.neg_items)
        with torch.no_grad():
            view_scores = torch.stack([self.backbone.score(v.user, h, batch.users, batch.pos_items)
                                       for h in graph_views], dim=1)
            log_f, log_g = reliability(view_scores, torch.sigmoid(neg).mean(), self.alpha, self.beta, self.gamma)
        self.judgement.update(batch.index, log_f.exp())
        terms = {}
        if self.dbpr:
            terms["dbpr"] = denoised_bpr(pos - neg,
                                         log_f if self.use_f else torch.zeros_like(log_f),
                                         log_g if self.use_g else torch.full_like(log_g, -torch.inf))
        else:
            terms["rec"] = self.backbone.rec_loss(batch, v.user, v.item)
        if self.au:
            terms["au"] = self.lambda_au * self.user_alignment(v.user, graph_views, v.item_id, batch.users)
        if self.ai:
            items = torch.unique(torch.cat([batch.pos_items, batch.neg_items]))
            terms["ai"] = self.lambda_ai * self.item_alignment(graph_views, items)
        inner = self.backbone.inner
        terms["extra"] = inner.extra_loss(batch, v.user, v.item_id)
        terms["reg"] = inner.regularization(batch, v.user, v.item_id)
        total = sum(terms.values())
        terms["f_mean"] = log_f.exp().mean()
        terms["g_share"] = torch.isfinite(log_g).to(log_f.dtype).mean()
        return total, terms

    def user_alignment(self, user_emb: torch.Tensor, graph_views: list[torch.Tensor], item_id: torch.Tensor,
                       batch_users: torch.Tensor) -> torch.Tensor:
        """L_AU (Eq. 9–10) over the batch's distinct users: P^mm from h^mm = mean of the views, P^id from h^id."""
        users = torch.unique(batch_users)
        content = torch.stack(graph_views).mean(0)

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

    def item_alignment(self, graph_views: list[torch.Tensor], items: torch.Tensor) -> torch.Tensor:
        """L_AI-MM + L_AI-S (Eq. 11) summed over the views, for the batch's distinct items ``items`` (sorted).

        Sets are chosen against all items without gradient (chunked; every
        batch, or once per epoch with ``ai_refresh="epoch"``); φ is
        differentiated on the chosen pairs and on the batch × batch pairs only.
        """
        units = [F.normalize(h, dim=1) for h in graph_views]
        if self.ai_refresh == "epoch":
            if self.multi_sets is None:
                self.refresh_sets()
            sets = list(zip(self.multi_sets[:, items], self.single_sets[:, items]))
        else:
            sets = graded_sets([u.detach() for u in units], items, self.ai_k)
        total = units[0].new_zeros(())
        for unit, (multi, single) in zip(units, sets):
            anchor = unit[items]
            scaled = anchor / self.ai_tau  # cos/τ, scaling [N, d] rather than [N, N]
            logits = lambda ids: (scaled[:, None, :] * unit[ids]).sum(-1)  # noqa: E731
            batch_logits = scaled @ anchor.T
            total = total + graded_contrastive(logits(multi), logits(single), batch_logits,
                                               dissimilar_mask(items, multi, single), self.ai_strategy)
        return total

    def interaction_scores(self) -> np.ndarray:
        """f(u, i) (Eq. 6) of each training interaction when last seen, float32 [len(train)]
        (higher = more reliable); never-seen interactions get the mean of the seen ones."""
        return self.judgement.scores()
