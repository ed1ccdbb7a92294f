"""BOD (Wang et al., "Efficient Bi-Level Optimization for Recommendation Denoising", KDD'23).

Bi-level denoising: the inner problem trains the recommender on a weighted
loss, the outer problem learns the weights. BOD's two efficiency devices are
kept: (1) the weights come from a small *generator* network instead of a
free weight per interaction, and (2) the outer objective is a one-step
gradient-matching loss instead of unrolling the inner optimisation.

Per training batch of triples (u, i, j), one inner and one outer step:
- weights w_ui = G(e_u, e_i) ∈ (0, 1) from the generator on the backbone's
  current output embeddings, detached (the generator never moves the backbone);
- inner step (the trainer's optimiser, on the backbone): BPR weighted by the
  detached w, normalised to mean 1 over the batch (the weights re-balance
  pairs; they do not change the learning rate);
- outer step (the generator's own Adam, inside ``loss``): minimise
  1 − cos(∇L_w, ∇L_ref) (averaged over the user and the item table) +
  anchor · (mean_b w_b − ½)². ∇L_w is linear in the weights, so the mismatch
  differentiates into the generator.

Choices where the paper and its released code (CoderWZW/BOD) leave room or differ:
- Generator: an MLP on [ê_u ‖ ê_i ‖ ê_u ⊙ ê_i] of the L2-normalised, detached
  output embeddings → hidden (64, ReLU) → 1 → sigmoid. The released generator
  reads [e_u ‖ e_i] (Linear 2d→64, ReLU, 64→64, 64→1, sigmoid); the product
  lets it express user–item agreement directly, the normalisation makes it
  independent of the backbone's scale.
- Gradients are w.r.t. the output embedding rows the batch touches (of its
  users, positives and negatives), not all parameters: for MF these are the
  parameters, for graph models the final layer. Each pair's loss depends only
  on its own rows, so one backward pass gives every pair's row gradients and
  any weighted gradient is a scatter-add of them: O(B·d) per step, no
  second-order pass through the backbone. (``score`` must read only the two
  rows it is given, true of every backbone here.)
- Reference (``reference``): ``running`` (default) — the unweighted BPR
  gradient of the recent batches, an exponential moving average over the
  full tables (decay ``reference_decay``, a persistent buffer, updated after
  the match so a batch is never matched against itself). Matching the batch's
  own unweighted gradient would be degenerate (uniform weights match
  exactly); against the consensus of other interactions, pairs whose
  gradient disagrees with it (random, injected ones) lose weight.
  ``alignment`` — the released code's outer step: weighted BPR matched to the
  equally weighted alignment loss ‖ê_u − ê_i‖² on the same pairs (on planted
  noise it up-weights the noise: detection AUC < 0.5).
- ``anchor``: the cosine is blind to the weights' overall level, which then
  drifts to 0 and makes the normalised weights extreme; the penalty keeps
  the batch mean near ½ (not in the paper).

Judgement: the generator weight of each training positive when last seen.
The generator's optimiser state is part of ``state_dict`` (extra state) and
the running reference a persistent buffer, so checkpoint/resume is exact.
The generator's parameters are left out of ``trainable_parameters`` (the
trainer's optimiser) and never get a gradient from the returned loss.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import OneOf, Range, setting
from ..losses import bpr_loss, bpr_per_pair
from ..models.base import Backbone, Batch
from .base import Denoiser, InteractionRecord, StepState

REFERENCES = ("running", "alignment")


@dataclass
class BODConfig:
    """generator_lr: the generator's Adam step (the released config's 1e-3); hidden_size: its width (64);
    outer_every: one outer (generator) step every this many batches (1: one inner, one outer step);
    reference: what the weighted gradient is matched to (``running`` or ``alignment``);
    reference_decay: EMA decay of the running reference; anchor: weight of (mean w − ½)²."""

    generator_lr: float = setting(1e-3, Range(above=0))
    hidden_size: int = setting(64, Range(min=1))
    outer_every: int = setting(1, Range(min=1))
    reference: str = setting("running", OneOf(*REFERENCES))
    reference_decay: float = setting(0.9, Range(min=0, below=1))
    anchor: float = setting(1.0, Range(min=0))


class WeightGenerator(nn.Module):
    """w(u, i) = σ(MLP([ê_u ‖ ê_i ‖ ê_u ⊙ ê_i])) with ê the L2-normalised embeddings.

    forward(user_rows [B, d], item_rows [B, d]) -> weights [B] in (0, 1).
    """

    def __init__(self, embedding_size: int, hidden_size: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3 * embedding_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, 1))

    def forward(self, user_rows: torch.Tensor, item_rows: torch.Tensor) -> torch.Tensor:
        user_rows, item_rows = F.normalize(user_rows, dim=-1), F.normalize(item_rows, dim=-1)
        features = torch.cat([user_rows, item_rows, user_rows * item_rows], dim=-1)
        return torch.sigmoid(self.net(features)).squeeze(-1)


def gradient_mismatch(weighted: tuple[torch.Tensor, ...], reference: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Mean over the tensors of 1 − cos(g_w, g_ref), each flattened (BOD's matching distance), in [0, 2]."""
    return torch.stack([1 - F.cosine_similarity(w.reshape(1, -1), r.reshape(1, -1), eps=1e-12).squeeze(0)
                        for w, r in zip(weighted, reference)]).mean()


class TouchedRows:
    """The distinct users and items of a batch (sorted ids), and where each pair's rows land among them."""

    def __init__(self, batch: Batch):
        self.users, self.user_slot = torch.unique(batch.users, return_inverse=True)  # slot [B]
        self.items, self.item_slot = torch.unique(torch.cat([batch.pos_items, batch.neg_items]),
                                                  return_inverse=True)  # slot [2B]: positives, then negatives

    def gradient(self, pair_rows: tuple[torch.Tensor, ...],
                 coef: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of Σ_b coef_b ℓ_b w.r.t. the touched rows: (users [n_u, d], items [n_i, d]).

        pair_rows: (∂ℓ_b/∂e_u, ∂ℓ_b/∂e_i, ∂ℓ_b/∂e_j), each [B, d]; coef [B] (may carry a graph).
        Accumulated with index_put (deterministic on every device).
        """
        user_grad, pos_grad, neg_grad = (g * coef[:, None] for g in pair_rows)
        users = user_grad.new_zeros(self.users.numel(), user_grad.shape[1])
        items = user_grad.new_zeros(self.items.numel(), user_grad.shape[1])
        return (users.index_put((self.user_slot,), user_grad, accumulate=True),
                items.index_put((self.item_slot,), torch.cat([pos_grad, neg_grad]), accumulate=True))


class BOD(Denoiser):
    """Generator-weighted BPR around any backbone, the generator trained by one-step gradient matching.

    Logged per batch: ``match`` (the mismatch, on outer steps) and ``weight`` (the batch's mean weight).
    """

    def __init__(self, backbone: Backbone, n_users: int, n_items: int, n_interactions: int,
                 embedding_size: int, generator_lr: float = 1e-3, hidden_size: int = 64,
                 outer_every: int = 1, reference: str = "running", reference_decay: float = 0.9,
                 anchor: float = 1.0):
        super().__init__(backbone)
        self.outer_every, self.reference = outer_every, reference
        self.reference_decay, self.anchor = reference_decay, anchor
        rows = (n_users, n_items) if reference == "running" else (0, 0)
        self.register_buffer("reference_user", torch.zeros(rows[0], embedding_size))  # EMA of ∂L/∂e_u
        self.register_buffer("reference_item", torch.zeros(rows[1], embedding_size))  # EMA of ∂L/∂e_i
        self.generator = WeightGenerator(embedding_size, hidden_size)
        self.generator_optimizer = torch.optim.Adam(self.generator.parameters(), lr=generator_lr)
        self.judgement = InteractionRecord(n_interactions)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The backbone's parameters; the generator has its own optimiser."""
        generator = {id(p) for p in self.generator.parameters()}
        return [p for p in super().trainable_parameters() if id(p) not in generator]

    # ------------------------------------------------------------ checkpoints
    def get_extra_state(self) -> dict:
        return {"generator_optimizer": self.generator_optimizer.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        # a copy, as for parameters: Adam would otherwise keep the given moment tensors and update them in place
        self.generator_optimizer.load_state_dict(copy.deepcopy(state["generator_optimizer"]))

    # ------------------------------------------------------------------- loss
    def loss(self, batch: Batch, state: StepState):
        user_emb, item_emb = self.backbone.batch_forward(batch)
        user_out, item_out = user_emb.detach(), item_emb.detach()
        weight = self.generator(user_out[batch.users], item_out[batch.pos_items])  # [B], grad → generator
        logged = {}
        if self.training and state.step % self.outer_every == 0:
            logged["match"] = self.outer_step(batch, user_out, item_out, weight)
        weight = weight.detach()
        self.judgement.update(batch.index, weight)
        pos, neg = self.backbone.batch_scores(batch, user_emb, item_emb)
        terms = self.loss_terms(bpr_loss(pos, neg, weight / weight.mean().clamp_min(1e-12)), batch, user_emb, item_emb)
        return sum(terms.values()), {**terms, **logged, "weight": weight.mean()}

    def outer_step(self, batch: Batch, user_out: torch.Tensor, item_out: torch.Tensor,
                   weight: torch.Tensor) -> torch.Tensor:
        """One generator update by gradient matching; returns the mismatch (detached scalar).

        user_out [U, d], item_out [I, d]: the backbone's output embeddings, detached;
        weight [B]: the generator's weights of the batch's (u, i), attached to the generator.
        """
        b = len(batch)
        pairs = torch.arange(b, device=weight.device)
        rows = tuple(t.requires_grad_(True) for t in
                     (user_out[batch.users], item_out[batch.pos_items], item_out[batch.neg_items]))
        with torch.enable_grad():
            items = torch.cat(rows[1:])  # a [2B, d] table: positives, then negatives
            pos = self.backbone.score(rows[0], items, pairs, pairs)
            neg = self.backbone.score(rows[0], items, pairs, pairs + b)
            bpr_rows = torch.autograd.grad(bpr_per_pair(pos, neg).sum(), rows)  # per pair: 3 × [B, d]
            if self.reference == "alignment":
                users, positives = F.normalize(rows[0], dim=-1), F.normalize(rows[1], dim=-1)
                ref_rows = (*torch.autograd.grad((users - positives).pow(2).sum(), rows[:2]),
                            torch.zeros_like(rows[2]))
        touched = TouchedRows(batch)
        weighted = touched.gradient(bpr_rows, weight / b)
        if self.reference == "running":
            mismatch = gradient_mismatch(weighted, (self.reference_user[touched.users],
                                                    self.reference_item[touched.items]))
            self._update_reference(batch, bpr_rows)
        else:
            mismatch = gradient_mismatch(weighted, touched.gradient(ref_rows, weight / b))
        objective = mismatch + self.anchor * (weight.mean() - 0.5) ** 2
        params = list(self.generator.parameters())
        for p, g in zip(params, torch.autograd.grad(objective, params)):
            p.grad = g
        self.generator_optimizer.step()
        for p in params:
            p.grad = None  # and the trainer's optimiser skips the generator
        return mismatch.detach()

    @torch.no_grad()
    def _update_reference(self, batch: Batch, pair_rows: tuple[torch.Tensor, ...]) -> None:
        """reference ← decay · reference + (1 − decay) · the batch's unweighted mean-BPR gradient (full tables).

        pair_rows: the per-pair row gradients (∂ℓ_b/∂e_u, ∂ℓ_b/∂e_i, ∂ℓ_b/∂e_j), each [B, d].
        """
        scale = (1 - self.reference_decay) / len(batch)
        self.reference_user.mul_(self.reference_decay).index_put_(
            (batch.users,), scale * pair_rows[0], accumulate=True)
        self.reference_item.mul_(self.reference_decay).index_put_(
            (torch.cat([batch.pos_items, batch.neg_items]),), scale * torch.cat(pair_rows[1:]), accumulate=True)

    def interaction_scores(self) -> np.ndarray:
        """Generator weight of each training positive when last seen, float32 [len(train)] (higher = cleaner)."""
        return self.judgement.scores()


def build(dataset, backbone: Backbone, config: BODConfig) -> BOD:
    was_training = backbone.training
    backbone.train(False)
    with torch.no_grad():  # the output embedding size, which the generator reads
        embedding_size = backbone()[0].shape[1]
    backbone.train(was_training)
    return BOD(backbone, dataset.n_users, dataset.n_items, len(dataset.train), embedding_size,
               config.generator_lr, config.hidden_size, config.outer_every, config.reference,
               config.reference_decay, config.anchor)
