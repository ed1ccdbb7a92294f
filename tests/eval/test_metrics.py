"""Metric definitions against hand-worked values (DESIGN §4)."""
import math

import numpy as np
import pytest
import torch

from mmdenoise.eval.metrics import ranking_metrics

LOG = math.log2


def _m(hits, n, ks=(1, 2, 3, 5)):
    out = ranking_metrics(torch.tensor(hits, dtype=torch.bool), torch.tensor(n), ks)
    return {k: v.numpy() for k, v in out.items()}


def test_held_out_larger_than_k():
    # ranks 1..5 hit pattern 1,0,1,0,0 ; |held-out| = 4
    m = _m([[1, 0, 1, 0, 0]], [4])
    assert m["recall@5"][0] == pytest.approx(2 / 4)          # hits / |held-out|, not / min(K, 4)
    assert m["precision@5"][0] == pytest.approx(2 / 5)
    assert m["hit@5"][0] == 1.0
    dcg = 1 / LOG(2) + 1 / LOG(4)
    idcg = 1 / LOG(2) + 1 / LOG(3) + 1 / LOG(4) + 1 / LOG(5)   # min(4, 5) = 4 ideal positions
    assert m["ndcg@5"][0] == pytest.approx(dcg / idcg)
    ap = (1 / 1 + 2 / 3) / 4                                    # precision at each hit / min(4, 5)
    assert m["map@5"][0] == pytest.approx(ap)
    # at K = 2: one hit; MAP and IDCG normalise by min(4, 2) = 2
    assert m["recall@2"][0] == pytest.approx(1 / 4)
    assert m["ndcg@2"][0] == pytest.approx((1 / LOG(2)) / (1 / LOG(2) + 1 / LOG(3)))
    assert m["map@2"][0] == pytest.approx(1 / 2)


def test_held_out_smaller_than_k():
    # |held-out| = 1, found at rank 3
    m = _m([[0, 0, 1, 0, 0]], [1])
    assert m["recall@5"][0] == 1.0 and m["recall@2"][0] == 0.0
    assert m["ndcg@5"][0] == pytest.approx((1 / LOG(4)) / 1.0)
    assert m["map@5"][0] == pytest.approx((1 / 3) / 1)
    assert m["precision@3"][0] == pytest.approx(1 / 3)
    assert m["hit@3"][0] == 1.0 and m["hit@2"][0] == 0.0


def test_no_hits_and_all_hits():
    m = _m([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], [3, 5])
    for key in ("recall@5", "ndcg@5", "precision@5", "map@5", "hit@5"):
        assert m[key][0] == 0.0
        assert m[key][1] == pytest.approx(1.0)


def test_k_beyond_computed_ranks_is_an_error():
    with pytest.raises(ValueError, match="K=10 exceeds"):
        ranking_metrics(torch.zeros(1, 5, dtype=torch.bool), torch.tensor([1]), (10,))
