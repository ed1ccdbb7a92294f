"""Augmentation (Eq. 9–13): which positions and slots are replaced, and the sampling distributions."""
from __future__ import annotations

import numpy as np
import torch

from mmdenoise.sequential.augment import augment_view, replacement_weights, sample_replacements, top_ranked


def test_replacement_weights_are_min_max_normalised_similarities():
    similarity = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0], [5.0, 1.0, 3.0, 9.0, 2.0]])
    allowed = torch.tensor([[True] * 5, [False, True, True, False, True]])
    # proportional to P and 1 − P: each row scaled by its span (4 and 2 here), which the draw ignores
    negative = replacement_weights(similarity, allowed, toward_similar=False) / torch.tensor([[4.0], [2.0]])
    positive = replacement_weights(similarity, allowed, toward_similar=True) / torch.tensor([[4.0], [2.0]])
    assert torch.allclose(negative[0], torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))       # 1 − P (Eq. 10)
    assert torch.allclose(positive[0], torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))       # P
    # min and max over the allowed candidates only (1, 3); disallowed get 0
    assert torch.allclose(negative[1], torch.tensor([0.0, 1.0, 0.0, 0.0, 0.5]))
    assert torch.allclose(positive[1], torch.tensor([0.0, 0.0, 1.0, 0.0, 0.5]))
    # a row of equal similarities, or a single allowed candidate: uniform over the allowed
    flat = replacement_weights(torch.ones(1, 3), torch.tensor([[True, False, True]]), toward_similar=False)
    assert torch.allclose(flat / flat.sum(), torch.tensor([[0.5, 0.0, 0.5]]))
    one = replacement_weights(torch.tensor([[1.0, 2.0]]), torch.tensor([[False, True]]), toward_similar=True)
    assert torch.allclose(one / one.sum(), torch.tensor([[0.0, 1.0]]))


def test_samples_follow_one_minus_similarity_and_similarity():
    """Empirical frequencies over 60,000 draws against the hand-computed distributions."""
    generator = torch.Generator().manual_seed(0)
    candidates = torch.tensor([[0.0], [1.0], [2.0], [3.0], [4.0]])      # D = query · candidate = 0..4
    query = torch.ones(60_000, 1)
    allowed = torch.ones(60_000, 5, dtype=torch.bool)
    allowed[:, 2] = False                                                # a seen item is never drawn
    for toward_similar, expected in ((False, [1.0, 0.75, 0.0, 0.25, 0.0]), (True, [0.0, 0.25, 0.0, 0.75, 1.0])):
        draws = sample_replacements(query, candidates, allowed, toward_similar, generator, n_draws=3)
        assert draws.shape == (3, 60_000)
        # the three draws of a row are independent: the pair (first, second) spreads over all allowed pairs
        pairs = np.bincount((draws[0] * 5 + draws[1]).numpy(), minlength=25).reshape(5, 5) / draws.shape[1]
        expected = np.array(expected) / sum(expected)
        assert np.abs(pairs - np.outer(expected, expected)).max() < 0.01
        freq = np.bincount(draws.flatten().numpy(), minlength=5) / draws.numel()
        assert np.abs(freq - expected).max() < 0.01, (toward_similar, freq, expected)
        assert freq[2] == 0


def test_top_ranked_counts_ties_and_padding():
    scores = torch.tensor([[3.0, 1.0, 3.0, 2.0, 9.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    valid = torch.tensor([[True, True, True, True, False], [True] * 5])
    high = top_ranked(scores, valid, torch.tensor([2, 1]), highest=True)
    assert high.tolist() == [[True, False, True, False, False], [False, False, False, False, True]]
    low = top_ranked(scores, valid, torch.tensor([1, 9]), highest=False)
    assert low.tolist() == [[False, True, False, False, False], [True] * 5]


def _view_inputs(seed=0):
    torch.manual_seed(seed)
    history = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14, -1, -1, -1, -1, -1]])
    alpha_item = torch.tensor([[9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0, 0.0],
                               [5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    alpha_mod = torch.randn(2, 10, 2)
    item_emb, modality_act = torch.randn(2, 10, 4), torch.randn(2, 10, 2, 4)
    pool = torch.arange(100, 140)
    allowed = torch.ones(2, 40, dtype=torch.bool)
    allowed[1, :30] = False                                                # user 1 saw most of the pool
    return (history, alpha_item, alpha_mod, item_emb, modality_act, pool, torch.randn(40, 4),
            torch.randn(40, 2, 4), allowed)


def test_negative_view_replaces_the_highest_interest_items_then_modalities():
    args = _view_inputs()
    history, alpha_mod = args[0], args[2]
    views = augment_view(*args, gamma_i=0.4, gamma_m=0.25, positive=False, n_views=3)
    assert views.shape == (3, 2, 10, 2)
    original = history.unsqueeze(-1).expand(2, 10, 2)
    # the J views change the same slots (chosen by the interests), with their own draws
    changed = views != original
    assert (changed == changed[0]).all() and not (views == views[0]).all()
    out = views[0]
    # an item-level replacement puts one new item in every slot of the position
    whole = (out[..., 0] == out[..., 1]) & (out[..., 0] != history)
    # K_i = ⌊n γ_i⌋: 4 of 10 and 2 of 5; the highest interests (positions 0, 2, 4, 6 and 0, 1)
    assert torch.nonzero(whole[0]).squeeze(1).tolist() == [0, 2, 4, 6]
    assert torch.nonzero(whole[1]).squeeze(1).tolist() == [0, 1]
    assert ((out[whole] >= 100).all())
    assert (out[1, 5:] == -1).all()                                        # padding stays padding
    assert (out[1][whole[1]] >= 130).all()                                 # only items user 1 has not seen
    # K_m = ⌊(n − K_i) M γ_m⌋ = ⌊6·2·0.25⌋ = 3 and ⌊3·2·0.25⌋ = 1 slots among the rest, highest α^m
    partial = (out != original) & ~whole.unsqueeze(-1)
    assert partial[0].sum() == 3 and partial[1].sum() == 1
    rest = (~whole[0]).unsqueeze(-1).expand(10, 2)
    top3 = alpha_mod[0][rest].topk(3).values
    assert torch.allclose(alpha_mod[0][partial[0]].sort(descending=True).values, top3)


def test_positive_view_replaces_the_lowest_interest_items():
    args = _view_inputs(1)
    history = args[0]
    out, = augment_view(*args, gamma_i=0.2, gamma_m=0.0, positive=True)
    whole = (out[..., 0] == out[..., 1]) & (out[..., 0] != history)
    assert ((out != history.unsqueeze(-1)).any(-1) == whole).all()        # γ_m = 0: no modality-level change
    assert torch.nonzero(whole[0]).squeeze(1).tolist() == [1, 9]           # α = 1 and 0: the two lowest
    assert torch.nonzero(whole[1]).squeeze(1).tolist() == [4]              # ⌊5·0.2⌋ = 1, α = 1
