"""Sequential recommenders over one shared modality encoder (paper §3.2–3.3 and §4.1 baselines).

Every model embeds items with ``ModalityEncoder`` (Eq. 1–3) and differs only
in how it pools a history window into a user: attention with
attention-weight aggregation + FFN (the base model, Eq. 1–4), mean pooling +
FFN (YoutubeDNN), the last GRU state (GRU4Rec) or K self-attentive interests
(ComiRec-SA). All score by dot product and train with sampled softmax
(Eq. 5–6). Shapes: B users, L window positions, M modalities, d width,
K interests, I items.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from .encoders import AttentionPool, FeedForward, ModalityEncoder
from .losses import sampled_softmax_loss


@dataclass
class SeqBatch:
    """A batch of next-item examples.

    users: int64 [B]; history: int64 [B, L] (left-aligned, PAD = −1 after the
    items); lengths: int64 [B] ≥ 1; targets: int64 [B]; negatives: int64 [N],
    the sampled softmax's shared negatives.
    """

    users: torch.Tensor
    history: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    negatives: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        return self.history >= 0


class Encoded(NamedTuple):
    """One pass of the user encoder.

    user: [B, d] ([B, K, d] for multi-interest models); item_act: item
    activations i_t [B, L, d]; modality_act: modality activations i^m_t
    [B, L, M, d], or None when items were encoded once per distinct item (Eq. 7–8
    differentiate the target's score with respect to these two).
    """

    user: torch.Tensor
    item_act: torch.Tensor
    modality_act: torch.Tensor


class SequentialRecommender(nn.Module):
    """Base class: the modality encoder, the sampled-softmax objective and full ranking.

    Subclasses implement ``pool(item_emb [B, L, d], mask [B, L]) -> user``.
    """

    multi_interest = False

    def __init__(self, encoder: ModalityEncoder):
        super().__init__()
        self.encoder = encoder

    def pool(self, item_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pool_table(self, table: torch.Tensor, index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``pool`` of the windows whose position (b, t) holds ``table[index[b, t]]``: table [D, d], index
        int64 [B, L]. Models whose pooling starts with a per-position linear map override this to apply
        it once per table row."""
        return self.pool(table[index], mask)

    def item_table(self, modality_items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The windows' item activations as a table and an index: (table [D, d], index int64 [B, L]),
        position (b, t) holding ``table[index[b, t]]``.

        modality_items: int64 [B, L, M] as in ``encode``. A position whose M slots
        hold one item reads that item's row (each distinct item encoded once); a
        mixed position (a modality-level replacement) gets a row of its own.
        """
        encoder = self.encoder
        slots = modality_items.clamp_min(0)
        first = slots[..., 0]
        distinct, index = torch.unique(first, return_inverse=True)
        table = encoder(distinct)
        mixed = (slots != first.unsqueeze(-1)).any(-1)
        if bool(mixed.any()):
            where = mixed.nonzero(as_tuple=True)
            table = torch.cat([table, encoder.aggregate(encoder.activations(slots[where]))[0]])
            index = index.index_put(where, torch.arange(distinct.numel(), table.shape[0], device=index.device))
        return table, index

    def encode(self, modality_items: torch.Tensor, mask: torch.Tensor, per_position: bool = False) -> Encoded:
        """Encode windows given slot by slot, keeping the activations Eq. 7–8 differentiate.

        modality_items: int64 [B, L, M], the item whose modality m fills slot (t, m)
        (PAD rows allowed where ``mask`` is False); mask: bool [B, L].
        By default the item activations come from ``item_table`` (``modality_act``
        is then None). ``per_position`` encodes every position on its own and
        returns its modality activations, which Eq. 8 differentiates.
        ``encode_users`` is the cheaper pass when only the users are needed.
        """
        encoder = self.encoder
        if per_position:
            modality_act = encoder.activations(modality_items.clamp_min(0))
            item_act, _ = encoder.aggregate(modality_act)
            return Encoded(self.pool(item_act, mask), item_act, modality_act)
        table, index = self.item_table(modality_items)
        item_act = table[index]
        return Encoded(self.pool(item_act, mask), item_act, None)

    def encode_users(self, modality_items: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The users alone ([B, d], or [B, K, d]) of windows given as in ``encode``: the pooling reads the
        ``item_table`` directly (``pool_table``), so no per-position activation is kept for Eq. 7–8."""
        table, index = self.item_table(modality_items)
        return self.pool_table(table, index, mask)

    def history_slots(self, history: torch.Tensor) -> torch.Tensor:
        """history: int64 [B, L] with PAD = −1 → modality_items int64 [B, L, M], every slot of a position
        from its item."""
        return history.unsqueeze(-1).expand(*history.shape, self.encoder.n_modalities)

    def encode_history(self, history: torch.Tensor, per_position: bool = False) -> Encoded:
        """``encode`` of history windows int64 [B, L] (PAD = −1)."""
        return self.encode(self.history_slots(history), history >= 0, per_position)

    def history_users(self, history: torch.Tensor) -> torch.Tensor:
        """``encode_users`` of history windows int64 [B, L] (PAD = −1)."""
        return self.encode_users(self.history_slots(history), history >= 0)

    def readout(self, user: torch.Tensor, target_emb: torch.Tensor) -> torch.Tensor:
        """The user vector that scores a known target: [B, d] (multi-interest models pick one)."""
        return user

    def target_scores(self, user: torch.Tensor, target_emb: torch.Tensor) -> torch.Tensor:
        """ψ(u, i⁺) per row, the pre-softmax score of Eq. 7–8: [B]."""
        return (self.readout(user, target_emb) * target_emb).sum(-1)

    def loss(self, batch: SeqBatch, epoch: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Sampled softmax (Eq. 5–6) of the batch: (loss, {"ssm": loss})."""
        user = self.history_users(batch.history)
        target_emb = self.encoder(batch.targets)
        loss = sampled_softmax_loss(self.readout(user, target_emb), target_emb,
                                    self.encoder(batch.negatives), batch.targets, batch.negatives)
        return loss, {"ssm": loss.detach()}

    def ranking_table(self, n_items: int) -> torch.Tensor:
        """What ``full_scores`` ranks against: every item's embedding [I, d]."""
        return self.encoder.all_items(n_items)

    def full_scores(self, history: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each history window: [B, I]."""
        user = self.history_users(history)
        if not self.multi_interest:
            return user @ table.T
        scores = user[:, 0] @ table.T
        for k in range(1, user.shape[1]):      # max over interests, one [B, I] block at a time
            scores = torch.maximum(scores, user[:, k] @ table.T)
        return scores


def _positions(max_len: int, dim: int) -> nn.Embedding:
    emb = nn.Embedding(max_len, dim)
    nn.init.normal_(emb.weight, std=0.02)
    return emb


class AttentionBase(SequentialRecommender):
    """The base model: item-wise self-attention with attention-weight aggregation (Eq. 1–3 over the
    sequence), then the FFN user encoder (Eq. 4). ``positional`` adds a learnt position embedding
    to each item before the attention (the paper has none)."""

    def __init__(self, encoder: ModalityEncoder, max_len: int, positional: bool = False):
        super().__init__(encoder)
        self.attention = AttentionPool(encoder.dim)
        self.ffn = FeedForward(encoder.dim)
        self.positions = _positions(max_len, encoder.dim) if positional else None

    def pool(self, item_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.positions is not None:
            item_emb = item_emb + self.positions.weight[: item_emb.shape[1]]
        pooled, _ = self.attention(item_emb, mask)
        return self.ffn(pooled)

    def pool_table(self, table: torch.Tensor, index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.positions is not None:          # the position embedding is added per position first
            return super().pool_table(table, index, mask)
        pooled, _ = self.attention(table, mask, index=index)
        return self.ffn(pooled)


class YoutubeDNN(SequentialRecommender):
    """Mean pooling of the history's item embeddings, then the same FFN (Covington et al. 2016)."""

    def __init__(self, encoder: ModalityEncoder):
        super().__init__(encoder)
        self.ffn = FeedForward(encoder.dim)

    def pool(self, item_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(item_emb.dtype)
        mean = (weights.unsqueeze(-1) * item_emb).sum(1) / weights.sum(1, keepdim=True).clamp_min(1.0)
        return self.ffn(mean)


class GRU4Rec(SequentialRecommender):
    """A GRU over the history (oldest first); the user is the hidden state after the last real item
    (Hidasi et al. 2016). Windows are left-aligned, so padding comes after that state."""

    def __init__(self, encoder: ModalityEncoder):
        super().__init__(encoder)
        self.gru = nn.GRU(encoder.dim, encoder.dim, batch_first=True)

    def pool(self, item_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.gru(item_emb)
        last = mask.sum(1).clamp_min(1) - 1
        return outputs[torch.arange(outputs.shape[0], device=outputs.device), last]


class ComiRecSA(SequentialRecommender):
    """K interests by self-attentive pooling (Cen et al. 2020):
    A = softmax_L(W₂ tanh(W₁ (H + P))) [B, K, L], interests V = A H [B, K, d].
    Training scores the target with the interest most aligned with it (argmax, as
    ComiRec); ranking takes each item's best interest (= merging the K top-N lists by score)."""

    multi_interest = True

    def __init__(self, encoder: ModalityEncoder, max_len: int, n_interests: int = 4):
        super().__init__(encoder)
        dim = encoder.dim
        self.positions = _positions(max_len, dim)
        self.hidden = nn.Linear(dim, 4 * dim)
        self.heads = nn.Linear(4 * dim, n_interests, bias=False)

    def pool(self, item_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keyed = item_emb + self.positions.weight[: item_emb.shape[1]]
        logits = self.heads(torch.tanh(self.hidden(keyed)))                  # [B, L, K]
        logits = logits.masked_fill(~mask.unsqueeze(-1), -torch.inf)
        attention = torch.softmax(logits, dim=1).transpose(1, 2)             # [B, K, L]
        return attention @ item_emb                                          # [B, K, d]

    def readout(self, user: torch.Tensor, target_emb: torch.Tensor) -> torch.Tensor:
        best = torch.einsum("bkd,bd->bk", user, target_emb).argmax(1)
        return user[torch.arange(user.shape[0], device=user.device), best]


class SequentialPopularity(nn.Module):
    """Ranks items by their count in the training users' sequences (no parameters, no training)."""

    multi_interest = False

    def __init__(self, popularity: torch.Tensor):
        super().__init__()
        self.register_buffer("popularity", torch.as_tensor(popularity, dtype=torch.float32), persistent=False)

    def ranking_table(self, n_items: int) -> torch.Tensor:
        return self.popularity

    def full_scores(self, history: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return table.unsqueeze(0).expand(history.shape[0], -1)

    def loss(self, batch: SeqBatch, epoch: int = 0):
        raise RuntimeError("the popularity model has nothing to train")
