"""Demure's item- and modality-level user augmentation (paper §3.5, Eq. 9–13).

A view of a history window is described by ``modality_items`` int64 [B, L, M]:
the item whose modality-m vector sits at slot (t, m). The original window has
every slot of position t pointing at item t; an item-level replacement points
all M slots of t at a new item, a modality-level replacement points one slot
at another item's same modality, and the encoder re-encodes the
result (modality-wise, then item-wise).

Negative view (Eq. 9–13): the K_i = ⌊n γ_i⌋ positions with the highest item
interest are replaced by non-interacted items drawn with probability
∝ 1 − P, P the row-wise min–max normalised similarity D = S_rep Uᵀ (Eq. 10);
then among the other K = n − K_i positions the K_m = ⌊K M γ_m⌋ modality slots
with the highest modality interest are replaced likewise from the same
modality of non-interacted items (Eq. 11–13). Positive view: the lowest
interests are replaced, drawn ∝ P. n is the window's real length.

Choice where the paper is loose: U is every item the user has not interacted
with. To bound memory (the rows × |U| similarity matrix) each batch draws one
uniform candidate pool of at most ``pool_size`` items and samples within it;
with pool_size ≥ n_items the sampling is exact (default 256: 256 of 1,682
items on ml-100k; a fresh pool every batch, so every item is reachable).
Similarities are dot products of the current, detached, item embeddings
(item level) or modality activations (modality level).
"""
from __future__ import annotations

import torch

_EPS = 1e-6


def top_ranked(scores: torch.Tensor, valid: torch.Tensor, counts: torch.Tensor, highest: bool) -> torch.Tensor:
    """bool [B, N]: the ``counts[b]`` valid entries of row b with the highest (or lowest) scores.

    scores: float [B, N]; valid: bool [B, N]; counts: int [B] (clipped to the
    valid entries). Ties go to the earlier position.
    """
    key = scores if highest else -scores
    key = key.masked_fill(~valid, -torch.inf)
    order = torch.sort(key, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(key.shape[1], device=key.device).expand_as(order))
    return (rank < counts.unsqueeze(1)) & valid


def replacement_weights(similarity: torch.Tensor, allowed: torch.Tensor, toward_similar: bool) -> torch.Tensor:
    """Sampling weights of Eq. 10/13, up to a per-row factor: P = (D − min)/(max − min) per row over
    the allowed candidates, weight P (positive view, ``toward_similar``) or 1 − P (negative view);
    0 where not allowed.

    Only proportions matter to the draw, so the row's span (max − min) is not divided out:
    the weights are D − min or max − D. similarity: D [R, C]; allowed: bool [R, C]. A row whose
    allowed similarities are all equal (or whose weights would all be 0) gets uniform weights over
    its allowed candidates. Returns float [R, C].
    """
    if toward_similar:
        low = similarity.masked_fill(~allowed, torch.inf).amin(1, keepdim=True)
        weights = (similarity - low).masked_fill_(~allowed, 0.0)
    else:
        high = similarity.masked_fill(~allowed, -torch.inf).amax(1, keepdim=True)
        weights = (high - similarity).masked_fill_(~allowed, 0.0)
    empty = weights.sum(1, keepdim=True) <= 0
    return torch.where(empty, allowed.to(weights.dtype), weights)


def sample_replacements(query: torch.Tensor, candidates: torch.Tensor, allowed: torch.Tensor,
                        toward_similar: bool, generator: torch.Generator | None = None,
                        n_draws: int = 1) -> torch.Tensor:
    """``n_draws`` independent candidates per query row, drawn with the weights of
    ``replacement_weights`` (Eq. 10/13); the weights are computed once for all draws.

    query: [R, d] (S_rep); candidates: [C, d] (U or U_m); allowed: bool [R, C],
    each row with ≥ 1 True. Returns int64 [n_draws, R], indices into ``candidates``.
    """
    if query.shape[0] == 0:
        return torch.zeros(n_draws, 0, dtype=torch.long, device=query.device)
    cdf = replacement_weights(query @ candidates.T, allowed, toward_similar).cumsum_(1)
    total = cdf[:, -1:]
    # inverse-CDF draws (one uniform per draw; torch.multinomial spends one exponential per candidate),
    # kept below the row's total so that a draw never lands past the last candidate with weight
    point = torch.rand(cdf.shape[0], n_draws, generator=generator, device=cdf.device, dtype=cdf.dtype) * total
    point = torch.minimum(point, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, point, right=True).T


def augment_view(history: torch.Tensor, alpha_item: torch.Tensor, alpha_modality: torch.Tensor,
                 item_emb: torch.Tensor, modality_act: torch.Tensor, pool_items: torch.Tensor,
                 pool_item_emb: torch.Tensor, pool_modality_act: torch.Tensor, allowed: torch.Tensor,
                 gamma_i: float, gamma_m: float, positive: bool,
                 generator: torch.Generator | None = None, n_views: int = 1) -> torch.Tensor:
    """``n_views`` augmented views of each history window (Eq. 9–13) → modality_items int64 [J, B, L, M].

    history: int64 [B, L] (PAD = −1); alpha_item [B, L], alpha_modality
    [B, L, M]: interest scores (Eq. 7–8); item_emb [B, L, d] and modality_act
    [B, L, M, d]: the window's detached activations; pool_items int64 [C] with
    pool_item_emb [C, d] and pool_modality_act [C, M, d]; allowed: bool [B, C],
    pool items user b has not interacted with (rows need ≥ 1 True).
    positive=False: negative view (highest interests replaced, ∝ 1 − P);
    True: positive view (lowest replaced, ∝ P). PAD positions stay PAD.
    The J views replace the same positions and slots (they depend on the
    interests only) with independent draws.
    """
    mask = history >= 0
    batch, length = history.shape
    n_mod = alpha_modality.shape[-1]
    n_real = mask.sum(1)
    k_items = torch.floor(n_real * gamma_i + _EPS).long()
    replaced = top_ranked(alpha_item, mask, k_items, highest=not positive)                    # Eq. 9
    out = history.unsqueeze(-1).expand(n_views, batch, length, n_mod).clone()

    rows, cols = replaced.nonzero(as_tuple=True)
    choice = sample_replacements(item_emb[rows, cols], pool_item_emb, allowed[rows], positive, generator,
                                 n_views)                                                      # Eq. 10
    out[:, rows, cols] = pool_items[choice].unsqueeze(-1)

    rest = (mask & ~replaced).unsqueeze(-1).expand(batch, length, n_mod).reshape(batch, -1)  # Eq. 11
    k_modalities = torch.floor((n_real - k_items) * n_mod * gamma_m + _EPS).long()
    chosen = top_ranked(alpha_modality.reshape(batch, -1), rest, k_modalities, highest=not positive)  # Eq. 12
    chosen = chosen.reshape(batch, length, n_mod)
    for m in range(n_mod):  # a handful of modalities; each has its own candidate set U_m
        rows, cols = chosen[..., m].nonzero(as_tuple=True)
        pick = sample_replacements(modality_act[rows, cols, m], pool_modality_act[:, m], allowed[rows],
                                   positive, generator, n_views)                              # Eq. 13
        out[:, rows, cols, m] = pool_items[pick]
    return out
