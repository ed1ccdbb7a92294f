"""Attention aggregation (Eq. 1–3): shapes, a hand-computed case, padding; the modality encoder's paths."""
from __future__ import annotations

import math

import torch

from mmdenoise.sequential.encoders import AttentionPool, ModalityEncoder
from mmdenoise.sequential.models import AttentionBase


def test_attention_weights_match_eq3_by_hand():
    pool = AttentionPool(2)
    with torch.no_grad():
        for layer in (pool.query, pool.key, pool.value):
            layer.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    pooled, weights = pool(x)
    enhanced = pool.enhanced(x)
    s = [[sum(a * b for a, b in zip(xm, xn)) / math.sqrt(2) for xn in x.tolist()] for xm in x.tolist()]
    row = [sum(math.exp(v) for v in r) for r in s]                                  # Σ_n exp s_mn
    expected = [r / sum(row) for r in row]                                          # Eq. 3
    assert torch.allclose(weights, torch.tensor(expected), atol=1e-6)
    beta = [[math.exp(v) / row[m] for v in r] for m, r in enumerate(s)]            # Eq. 1
    enh = torch.tensor(beta) @ x                                                    # Eq. 2 (h = identity)
    assert torch.allclose(enhanced, enh, atol=1e-6)
    assert torch.allclose(pooled, (torch.tensor(expected)[:, None] * enh).sum(0), atol=1e-6)


def test_attention_shapes_and_padding_gets_zero_weight():
    torch.manual_seed(0)
    pool = AttentionPool(8)
    x = torch.randn(4, 6, 8)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3, [True] + [False] * 5, [True] * 5 + [False]])
    pooled, weights = pool(x, mask)
    assert pooled.shape == (4, 8) and weights.shape == (4, 6) and pool.enhanced(x, mask).shape == (4, 6, 8)
    assert (weights[~mask] == 0).all()
    assert torch.allclose(weights.sum(1), torch.ones(4))
    # what sits in the padding changes nothing
    noisy = torch.where(mask.unsqueeze(-1), x, torch.randn(4, 6, 8) * 100)
    pooled2, weights2 = pool(noisy, mask)
    assert torch.allclose(pooled, pooled2, atol=1e-5) and torch.allclose(weights, weights2)
    # broadcast (N ≤ 8) and matmul paths agree
    big = AttentionPool(8)
    big.load_state_dict(pool.state_dict())
    long = torch.cat([x, torch.randn(4, 4, 8)], dim=1)
    long_mask = torch.cat([mask, torch.zeros(4, 4, dtype=torch.bool)], dim=1)
    pooled3, _ = big(long, long_mask)
    assert torch.allclose(pooled, pooled3, atol=1e-5)
    # a table and an index give what the gathered rows give
    table = torch.randn(5, 8)
    index = torch.tensor([[0, 3, 3, 1, 4, 0], [2, 2, 2, 2, 2, 2], [4, 1, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0]])
    gathered, gathered_weights = pool(table[index], mask)
    from_table, table_weights = pool(table, mask, index=index)
    assert torch.allclose(gathered, from_table, atol=1e-6) and torch.allclose(gathered_weights, table_weights)


def _encoder(seed=0):
    torch.manual_seed(seed)
    features = {"image": torch.randn(12, 5), "text": torch.randn(12, 3)}
    return ModalityEncoder(features, 8)


def test_modality_encoder_shapes_and_the_distinct_item_path():
    encoder = _encoder()
    items = torch.tensor([[0, 3, 3, 11], [2, 2, 0, 0]])
    acts = encoder.activations(items.unsqueeze(-1).expand(2, 4, 2))
    assert acts.shape == (2, 4, 2, 8)
    emb = encoder(items)
    assert emb.shape == (2, 4, 8)
    assert torch.allclose(emb[0, 1], emb[0, 2]) and torch.allclose(emb[0, 0], emb[1, 2])
    model = AttentionBase(encoder, max_len=4)
    history = torch.tensor([[0, 3, 5, -1], [7, -1, -1, -1]])
    fast = model.encode_history(history)
    slow = model.encode_history(history, per_position=True)
    assert fast.modality_act is None and slow.modality_act.shape == (2, 4, 2, 8)
    assert torch.allclose(fast.user, slow.user, atol=1e-5)
    # a mixed position (image of item 9, text of item 0) is encoded on its own in both paths
    slots = history.clamp_min(0).unsqueeze(-1).expand(2, 4, 2).clone()
    slots[0, 1, 0] = 9
    mask = history >= 0
    assert torch.allclose(model.encode(slots, mask).user, model.encode(slots, mask, per_position=True).user,
                          atol=1e-5)
    assert not torch.allclose(model.encode(slots, mask).user, fast.user)


def test_users_alone_equal_the_users_of_the_full_pass():
    encoder = _encoder()
    history = torch.tensor([[0, 3, 5, 3], [7, 7, -1, -1], [11, -1, -1, -1]])
    slots = history.clamp_min(0).unsqueeze(-1).expand(3, 4, 2).clone()
    slots[0, 2, 1] = 9                      # one mixed position
    mask = history >= 0
    for positional in (False, True):
        torch.manual_seed(1)
        model = AttentionBase(encoder, max_len=4, positional=positional)
        assert torch.allclose(model.encode_users(slots, mask), model.encode(slots, mask).user, atol=1e-6)
        assert torch.allclose(model.encode_users(slots, mask), model.encode(slots, mask, per_position=True).user,
                              atol=1e-5)
        # and the same gradients reach every parameter (the mixed position's modalities included)
        weights = torch.randn(3, 8)
        grads = []
        for users in (lambda: model.encode_users(slots, mask), lambda: model.encode(slots, mask).user):
            model.zero_grad()
            (users() * weights).sum().backward()
            grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(model.parameters()))
        assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-5) for n in grads[0])
