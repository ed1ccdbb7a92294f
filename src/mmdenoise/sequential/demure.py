"""Demure: the attention base model trained with gradient-localised augmentation and
contrastive learning (paper §3.4–3.6, Eq. 7–15).

Per batch: one pass of the base model gives the user u and L_ssm (Eq. 5–6);
the gradients of ψ(u, i⁺) give the interest scores (Eq. 7–8); J negative and
J positive views of every window are drawn (Eq. 9–13) and re-encoded into
u_j⁻, u_j⁺; the loss is

    L = L_ssm + λ₁ L_ssm^aug + λ₂ L_cont                    (Eq. 15)

with L_ssm^aug the sampled softmax of the positive views against the same
target (mean over the J views) and L_cont Eq. 14. Demure composes the base
model (``self.base``); at evaluation it is the base model.

Choices where the paper is silent: λ₁ = 0 and λ₂ = 0.1 by default (λ₁ chosen
on validation, see ``DemureConfig``; L_ssm^aug is still computed and logged);
the augmentation starts after ``warmup_epochs`` (0: from the first batch); the
views are drawn once per batch from the same candidate pool.
"""
from __future__ import annotations

import torch
from torch import nn

from .augment import augment_view
from .interest import interest_scores
from .losses import contrastive_loss, sampled_softmax_loss
from .models import AttentionBase, SeqBatch


class Demure(nn.Module):
    """Demure around an ``AttentionBase``; settings as in :class:`~mmdenoise.sequential.config.DemureConfig`.

    seen_keys: sorted int64 [S], ``user * n_items + item`` of every known
        interaction (replacements are drawn from items the user has not
        interacted with); a non-persistent buffer, with ``seen_users`` (its
        users, [S]) beside it.
    """

    multi_interest = False

    def __init__(self, base: AttentionBase, seen_keys: torch.Tensor, n_items: int, *, gamma_i: float,
                 gamma_m: float, n_views: int, lambda_aug: float, lambda_cont: float, interest: str,
                 similarity: str, temperature: float, pool_size: int, warmup_epochs: int):
        super().__init__()
        self.base = base
        self.register_buffer("seen_keys", torch.as_tensor(seen_keys, dtype=torch.long), persistent=False)
        self.register_buffer("seen_users", self.seen_keys // n_items, persistent=False)
        self.n_items = n_items
        self.gamma_i, self.gamma_m, self.n_views = gamma_i, gamma_m, n_views
        self.lambda_aug, self.lambda_cont = lambda_aug, lambda_cont
        self.interest, self.similarity, self.temperature = interest, similarity, temperature
        self.pool_size, self.warmup_epochs = pool_size, warmup_epochs

    # evaluation is the base model's
    def ranking_table(self, n_items: int) -> torch.Tensor:
        return self.base.ranking_table(n_items)

    def full_scores(self, history: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return self.base.full_scores(history, table)

    def candidate_pool(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A uniform pool of ≤ pool_size items (all items when that is enough) and which of them each
        user has not interacted with: (pool int64 [C], allowed bool [B, C]).

        A user who has seen every pool item may take any of them (never happens unless the pool
        is smaller than a sequence)."""
        device = self.seen_keys.device
        if self.pool_size >= self.n_items:
            pool = torch.arange(self.n_items, device=device)
        else:
            pool = torch.randperm(self.n_items, device=device)[: self.pool_size]
        # the seen items of the batch's distinct users (each one's run of seen_keys), marked through the
        # pool's columns: linear in their histories (a search per (user, pool item) was 2.5x slower on ml-1m)
        users, inverse = torch.unique(users, return_inverse=True)
        start = torch.searchsorted(self.seen_users, users)
        lengths = torch.searchsorted(self.seen_users, users, right=True) - start
        rows = torch.repeat_interleave(torch.arange(users.numel(), device=device), lengths)
        # entry j of the concatenated runs is seen_keys[j + (start − where its run begins in the concatenation)]
        at = torch.arange(rows.numel(), device=device) + torch.repeat_interleave(start - (lengths.cumsum(0) - lengths),
                                                                                 lengths)
        column = torch.full((self.n_items,), -1, dtype=torch.long, device=device)
        column[pool] = torch.arange(pool.numel(), device=device)
        hit = column[self.seen_keys[at] % self.n_items]
        allowed = torch.ones(users.numel(), pool.numel(), dtype=torch.bool, device=device)
        allowed[rows[hit >= 0], hit[hit >= 0]] = False
        allowed |= ~allowed.any(1, keepdim=True)
        return pool, allowed[inverse]

    def loss(self, batch: SeqBatch, epoch: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 15 on one batch → (loss, {"ssm", "ssm_aug", "cont"})."""
        base, encoder = self.base, self.base.encoder
        mask = batch.mask
        encoded = base.encode_history(batch.history)
        target_emb = encoder(batch.targets)
        negative_emb = encoder(batch.negatives)
        ssm = sampled_softmax_loss(encoded.user, target_emb, negative_emb, batch.targets, batch.negatives)
        terms = {"ssm": ssm.detach()}
        if epoch < self.warmup_epochs or (self.lambda_aug == 0 and self.lambda_cont == 0):
            return ssm, terms

        psi = base.target_scores(encoded.user, target_emb)
        alpha_item, alpha_modality = interest_scores(psi, encoded, mask, self.interest, items=batch.history,
                                                     encoder=encoder)                             # Eq. 7–8
        with torch.no_grad():
            modality_act = encoder.activations(batch.history.clamp_min(0).unsqueeze(-1).expand(
                *batch.history.shape, encoder.n_modalities))
        views = self.views(batch, alpha_item, alpha_modality, encoded.item_act.detach(), modality_act)
        n_views, size = self.n_views, batch.history.shape[0]
        augmented = base.encode_users(views, mask.repeat(2 * n_views, 1)).reshape(2, n_views, size, -1)
        positives, negatives = augmented[0].transpose(0, 1), augmented[1].transpose(0, 1)       # [B, J, d]
        with torch.set_grad_enabled(self.lambda_aug != 0 and torch.is_grad_enabled()):  # logged either way
            ssm_aug = sampled_softmax_loss(augmented[0].reshape(n_views * size, -1), target_emb.repeat(n_views, 1),
                                           negative_emb, batch.targets.repeat(n_views), batch.negatives)
        cont = contrastive_loss(encoded.user, positives, negatives, self.similarity, self.temperature)  # Eq. 14
        terms.update(ssm_aug=ssm_aug.detach(), cont=cont.detach())
        return ssm + self.lambda_aug * ssm_aug + self.lambda_cont * cont, terms

    @torch.no_grad()
    def views(self, batch: SeqBatch, alpha_item: torch.Tensor, alpha_modality: torch.Tensor,
              item_act: torch.Tensor, modality_act: torch.Tensor) -> torch.Tensor:
        """J positive then J negative views of every window: modality_items int64 [2·J·B, L, M]."""
        encoder = self.base.encoder
        pool, allowed = self.candidate_pool(batch.users)
        pool_act = encoder.activations(pool.unsqueeze(-1).expand(-1, encoder.n_modalities))
        pool_emb = encoder.aggregate(pool_act)[0]
        out = [augment_view(batch.history, alpha_item, alpha_modality, item_act, modality_act, pool, pool_emb,
                            pool_act, allowed, self.gamma_i, self.gamma_m, positive, n_views=self.n_views)
               for positive in (True, False)]
        return torch.cat(out).flatten(0, 1)
