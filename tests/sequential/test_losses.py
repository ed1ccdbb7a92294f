"""Sampled softmax (Eq. 5–6) and the contrastive loss (Eq. 14) against hand computations."""
from __future__ import annotations

import math

import pytest
import torch

from mmdenoise.sequential.losses import contrastive_loss, sampled_softmax_loss


def test_contrastive_loss_matches_eq14_by_hand():
    user = torch.tensor([[1.0, 0.0], [0.5, -1.0]])
    positives = torch.tensor([[[1.0, 1.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, 0.0]]])     # J = 2
    negatives = torch.tensor([[[-1.0, 0.0], [2.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]])
    expected = []
    for b in range(2):
        dot = lambda v: sum(x * y for x, y in zip(user[b].tolist(), v))  # noqa: E731
        pos = sum(math.exp(dot(v)) for v in positives[b].tolist())
        neg = sum(math.exp(dot(v)) for v in negatives[b].tolist())
        expected.append(-math.log(pos / (pos + neg)))
    got = contrastive_loss(user, positives, negatives)
    assert got.item() == pytest.approx(sum(expected) / 2, rel=1e-6)
    # temperature divides φ; cosine normalises first
    half = contrastive_loss(user, positives, negatives, temperature=0.5)
    assert half.item() == pytest.approx(contrastive_loss(2 * user, positives, negatives).item(), rel=1e-6)
    cos = contrastive_loss(user, positives, negatives, similarity="cosine")
    unit = lambda t: t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # noqa: E731
    assert cos.item() == pytest.approx(contrastive_loss(unit(user), unit(positives), unit(negatives)).item(), rel=1e-5)


def test_contrastive_loss_gradients_reach_all_views():
    user = torch.randn(3, 4, requires_grad=True)
    pos = torch.randn(3, 1, 4, requires_grad=True)
    neg = torch.randn(3, 1, 4, requires_grad=True)
    contrastive_loss(user, pos, neg).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in (user, pos, neg))


def test_sampled_softmax_by_hand_with_an_accidental_hit():
    user = torch.tensor([[1.0, 2.0], [0.0, 1.0]])
    target_emb = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    negative_emb = torch.tensor([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    targets = torch.tensor([5, 7])
    negatives = torch.tensor([3, 7, 4])               # row 1's target is sampled as a negative: left out
    rows = []
    for b, skip in ((0, None), (1, 1)):
        pos = float(user[b] @ target_emb[b])
        negs = [float(user[b] @ e) for n, e in enumerate(negative_emb) if n != skip]
        rows.append(-pos + math.log(math.exp(pos) + sum(math.exp(v) for v in negs)))
    got = sampled_softmax_loss(user, target_emb, negative_emb, targets, negatives)
    assert got.item() == pytest.approx(sum(rows) / 2, rel=1e-6)
