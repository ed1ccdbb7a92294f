"""Metric definitions against hand-worked values (docs/design.md, Evaluation protocol).

Notation: ranks are 1-based in the comments; hits[r - 1] is 1 when the item
at rank r is held out; n = |held-out|; m = min(n, K);
DCG = Σ hit_r / log2(r + 1) over 1-based r; IDCG = Σ_{r ≤ m} 1 / log2(r + 1).
Handy values: 1/log2(2) = 1, 1/log2(3) = 0.63093, 1/log2(4) = 0.5, 1/log2(5) = 0.43068.
"""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdenoise.eval.metrics import METRICS, ranking_metrics

D2, D3, D4, D5 = 1.0, 1 / math.log2(3), 0.5, 1 / math.log2(5)


def _m(hits, n, ks=(1, 2, 3, 5)):
    out = ranking_metrics(torch.tensor(hits, dtype=torch.bool), torch.tensor(n), ks)
    return {k: v.numpy() for k, v in out.items()}


def test_held_out_larger_than_k():
    # hits at ranks 1 and 3 (pattern 1,0,1,0,0); n = 4
    m = _m([[1, 0, 1, 0, 0]], [4])
    # K = 5: H = 2, m = min(4, 5) = 4
    assert m["recall@5"][0] == pytest.approx(0.5)            # 2 / 4
    assert m["precision@5"][0] == pytest.approx(0.4)         # 2 / 5
    assert m["hit@5"][0] == 1.0
    # DCG = 1 + 0.5 = 1.5; IDCG over 4 positions = 1 + 0.63093 + 0.5 + 0.43068 = 2.56161
    assert m["ndcg@5"][0] == pytest.approx(1.5 / 2.5616063116)
    assert m["ndcg@5"][0] == pytest.approx(0.58557007)
    # AP: precision at the hits, 1/1 and 2/3 -> (1 + 0.66667) / 4 = 0.41667
    assert m["map@5"][0] == pytest.approx((1 + 2 / 3) / 4)
    # K = 2: H = 1, m = min(4, 2) = 2
    assert m["recall@2"][0] == pytest.approx(0.25)            # 1 / 4, NOT 1 / min(2, 4) = 0.5
    assert m["precision@2"][0] == pytest.approx(0.5)          # 1 / 2
    assert m["ndcg@2"][0] == pytest.approx(1 / (D2 + D3))     # 1 / 1.63093 = 0.61315
    assert m["ndcg@2"][0] == pytest.approx(0.61314719)
    assert m["map@2"][0] == pytest.approx(0.5)                # (1/1) / 2
    # K = 1: the rank-1 hit; m = 1 -> NDCG 1, MAP 1, recall 1/4
    assert (m["recall@1"][0], m["ndcg@1"][0], m["map@1"][0], m["precision@1"][0]) == pytest.approx(
        (0.25, 1.0, 1.0, 1.0))


def test_held_out_smaller_than_k():
    # hits at ranks 2 and 4 (pattern 0,1,0,1,0); row 0 has n = 2, row 1 has n = 3
    m = _m([[0, 1, 0, 1, 0], [0, 1, 0, 1, 0]], [2, 3])
    # DCG@5 = 0.63093 + 0.43068 = 1.06161 for both rows
    # n = 2: IDCG over min(2, 5) = 2 positions = 1.63093 -> 0.65092
    assert m["ndcg@5"][0] == pytest.approx((D3 + D5) / (D2 + D3))
    assert m["ndcg@5"][0] == pytest.approx(0.65092093)
    # n = 3: IDCG over 3 positions = 2.13093 -> 0.49819
    assert m["ndcg@5"][1] == pytest.approx(0.49818926)
    assert m["recall@5"].tolist() == pytest.approx([1.0, 2 / 3])   # 2/2, 2/3
    assert m["precision@5"].tolist() == pytest.approx([0.4, 0.4])  # 2/5
    # MAP@5: precision at the hits 1/2 and 2/4 -> sum 1.0; / min(2,5) = 2 -> 0.5; / min(3,5) = 3 -> 0.33333
    # (dividing by K = 5 would give 0.2; the 3-row shows it is not "divide by the hits found")
    assert m["map@5"].tolist() == pytest.approx([0.5, 1 / 3])
    # K = 3, n = 3: H = 1 (rank 2); IDCG over 3 positions -> 0.63093 / 2.13093 = 0.29608; MAP (1/2)/3
    assert m["ndcg@3"][1] == pytest.approx(0.29608191)
    assert m["map@3"][1] == pytest.approx(1 / 6)
    assert m["recall@3"][1] == pytest.approx(1 / 3) and m["precision@3"][1] == pytest.approx(1 / 3)
    assert m["hit@1"].tolist() == [0.0, 0.0] and m["hit@2"].tolist() == [1.0, 1.0]


def test_no_hits_and_all_hits():
    m = _m([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]], [3, 5, 7])
    for key in ("recall@5", "ndcg@5", "precision@5", "map@5", "hit@5"):
        assert m[key][0] == 0.0
        assert m[key][1] == pytest.approx(1.0)
    # n = 7 > K = 5, all five ranks hit: recall 5/7; NDCG and MAP are 1 because they
    # normalise by min(7, 5) = 5 positions (MAP: (1+1+1+1+1) / 5)
    assert m["recall@5"][2] == pytest.approx(5 / 7)
    assert (m["ndcg@5"][2], m["map@5"][2], m["precision@5"][2], m["hit@5"][2]) == pytest.approx((1, 1, 1, 1))


def test_keys_dtype_and_float_hits():
    hits = torch.tensor([[1.0, 0.0, 1.0]])
    out = ranking_metrics(hits, torch.tensor([2]), (1, 3))
    assert set(out) == {f"{name}@{k}" for name in METRICS for k in (1, 3)}
    assert all(v.dtype == torch.float64 and v.shape == (1,) for v in out.values())
    as_bool = ranking_metrics(hits.bool(), torch.tensor([2.0]), (1, 3))
    assert all(torch.equal(out[k], as_bool[k]) for k in out)


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="K=10"):
        ranking_metrics(torch.zeros(1, 5, dtype=torch.bool), torch.tensor([1]), (10,))
    with pytest.raises(ValueError, match="K=0"):
        ranking_metrics(torch.zeros(1, 5, dtype=torch.bool), torch.tensor([1]), (0,))
    with pytest.raises(ValueError, match="at least one held-out"):
        ranking_metrics(torch.zeros(2, 5, dtype=torch.bool), torch.tensor([1, 0]), (5,))
    with pytest.raises(ValueError, match="n_relevant"):
        ranking_metrics(torch.zeros(2, 5, dtype=torch.bool), torch.tensor([1]), (5,))


def _reference(hits: list[int], n: int, k: int) -> dict[str, float]:
    """The definitions (docs/design.md, Evaluation protocol) written out term by term (no cumsum)."""
    top = hits[:k]
    found = sum(top)
    depth = min(n, k)
    dcg = sum(h / math.log2(r + 2) for r, h in enumerate(top))
    idcg = sum(1 / math.log2(r + 2) for r in range(depth))
    ap = sum(h * sum(top[:r + 1]) / (r + 1) for r, h in enumerate(top))
    return {"recall": found / n, "ndcg": dcg / idcg, "precision": found / k, "map": ap / depth,
            "hit": float(found > 0)}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 1), min_size=8, max_size=8), st.integers(0, 12)),
                min_size=1, max_size=6))
def test_agrees_with_term_by_term_definitions(rows):
    hits = [h for h, _ in rows]
    n = [max(1, sum(h), extra) for h, extra in rows]   # |held-out| ≥ hits found
    out = ranking_metrics(torch.tensor(hits), torch.tensor(n), (1, 3, 8))
    for b in range(len(rows)):
        for k in (1, 3, 8):
            ref = _reference(hits[b], n[b], k)
            for name in METRICS:
                assert out[f"{name}@{k}"][b].item() == pytest.approx(ref[name], abs=1e-12)
