"""The full-ranking evaluator: masking, ties, excluded users, per-user arrays, brute-force agreement.

Notation as in test_metrics.py: 1-based ranks; D2 = 1/log2(2) = 1, D3 = 1/log2(3) = 0.63093,
D4 = 1/log2(4) = 0.5 (the discount of ranks 1, 2, 3).
"""
import math

import numpy as np
import pytest
import torch

from mmdenoise.data import Dataset, Interactions
from mmdenoise.eval import METRICS, EvalResult, Evaluator, ScoreBlocks, top_k_items

D2, D3, D4 = 1.0, 1 / math.log2(3), 0.5


def _inter(pairs):
    return Interactions(np.array([p[0] for p in pairs], dtype=np.int64),
                        np.array([p[1] for p in pairs], dtype=np.int64))


def _ds(train, valid, test, n_users=4, n_items=6):
    return Dataset("hand", n_users, n_items, _inter(train), _inter(valid), _inter(test))


def _scores(table):
    table = torch.as_tensor(np.asarray(table, dtype=np.float32))
    return lambda users: table[users]


# user 0: train {0},    valid {1}, test {2, 3}
# user 1: train {4},    valid {5}, test {0}
# user 2: train {1, 2}, valid {3}, no test  -> evaluated on valid only
# user 3: no data at all                    -> never evaluated
HAND = _ds(train=[(0, 0), (1, 4), (2, 1), (2, 2)], valid=[(0, 1), (1, 5), (2, 3)],
           test=[(0, 2), (0, 3), (1, 0)])


def test_training_items_are_masked_and_valid_items_stay_in_the_test_pool():
    scores = [[9, 8, 7, 1, 0, 0],    # u0: item 0 (train) has the top score but is masked
              [5, 0, 0, 0, 9, 8],    # u1: item 4 (train) masked
              [0] * 6, [0] * 6]
    r = Evaluator(HAND, "test", ks=(1, 2, 5)).evaluate(_scores(scores))
    assert r.users.tolist() == [0, 1]
    # u0 ranking: item1 (valid, stays in the pool, no test hit), item2 HIT, item3 HIT, item4, item5; n = 2
    #   recall@1 = 0; recall@2 = 1/2; precision@2 = 1/2
    #   ndcg@2 = D3 / (D2 + D3) = 0.63093 / 1.63093 = 0.38685;  map@2 = (1/2) / min(2, 2) = 0.25
    #   ndcg@5 = (D3 + D4) / (D2 + D3) = 1.13093 / 1.63093 = 0.69343;  map@5 = (1/2 + 2/3) / 2 = 0.58333
    # u1 ranking: item5 (valid), item0 HIT (score 5), item1, item2, item3; n = 1
    #   recall@2 = 1; ndcg@2 = D3 / D2 = 0.63093; map@2 = (1/2) / min(1, 2) = 0.5
    assert r.per_user["recall@1"].tolist() == [0.0, 0.0]
    assert r.per_user["recall@2"].tolist() == [0.5, 1.0]
    assert r.per_user["precision@2"].tolist() == [0.5, 0.5]
    assert r.per_user["ndcg@2"] == pytest.approx([0.38685281, 0.63092975])
    assert r.per_user["map@2"] == pytest.approx([0.25, 0.5])
    assert r.per_user["ndcg@5"][0] == pytest.approx(0.69342640)
    assert r.per_user["map@5"][0] == pytest.approx(7 / 12)
    assert r.metrics["recall@2"] == pytest.approx(0.75)         # mean of 1/2 and 1
    # mask_valid_in_test: u0 ranks 2, 3 first -> recall@1 1/2, ndcg@2 = (D2 + D3)/(D2 + D3) = 1, map@2 = (1 + 1)/2 = 1
    #                      u1 ranks 0 first   -> recall@1 1
    masked = Evaluator(HAND, "test", ks=(1, 2), mask_valid_in_test=True).evaluate(_scores(scores))
    assert masked.per_user["recall@1"].tolist() == [0.5, 1.0]
    assert masked.per_user["ndcg@2"] == pytest.approx([1.0, 1.0])
    assert masked.per_user["map@2"] == pytest.approx([1.0, 1.0])


def test_validation_split_masks_training_items_only():
    scores = [[9, 1, 8, 7, 0, 0],    # u0: ranking 2, 3, 1 -> valid item 1 at rank 3
              [0, 0, 0, 0, 9, 1],    # u1: item 4 masked -> valid item 5 at rank 1
              [0, 9, 9, 5, 6, 0],    # u2: items 1, 2 masked -> ranking 4, 3 -> valid item 3 at rank 2
              [0] * 6]
    r = Evaluator(HAND, "valid", ks=(1, 2, 3)).evaluate(_scores(scores))
    assert r.users.tolist() == [0, 1, 2]
    assert r.per_user["recall@1"].tolist() == [0.0, 1.0, 0.0]
    assert r.per_user["recall@2"].tolist() == [0.0, 1.0, 1.0]
    # n = 1, so IDCG = D2 = 1: ndcg@3 = D4 = 0.5 for u0, D3 = 0.63093 for u2
    assert r.per_user["ndcg@3"] == pytest.approx([0.5, 1.0, 0.63092975])
    assert r.per_user["map@3"] == pytest.approx([1 / 3, 1.0, 1 / 2])


def test_a_masked_item_never_counts_even_when_it_is_held_out_and_forced_into_the_top_k():
    # u0 bought item 0 in train and again in test (repeat); 3 items only, so with K = 5 the
    # masked item 0 still appears in the top 5 (at rank 3, after the two pool items).
    ds = _ds(train=[(0, 0), (1, 1)], valid=[(0, 1), (1, 0)], test=[(0, 0), (0, 2), (1, 2)], n_users=2, n_items=3)
    r = Evaluator(ds, "test", ks=(1, 5)).evaluate(_scores([[9, 0, 5], [0, 0, 1]]))
    # u0: ranking 2 (HIT), 1, [0 masked]; n = |{0, 2}| = 2 -> recall@1 = recall@5 = 1/2;
    #     ndcg@5 = D2 / (D2 + D3) = 0.61315 (m = min(2, 5) = 2); precision@5 = 1/5
    assert r.per_user["recall@1"][0] == 0.5 and r.per_user["recall@5"][0] == 0.5
    assert r.per_user["ndcg@5"][0] == pytest.approx(1 / (D2 + D3))
    assert r.per_user["precision@5"][0] == pytest.approx(0.2)
    # u1: ranking 2 (HIT), 0, [1 masked] -> every metric at K = 1 is 1
    assert r.per_user["ndcg@1"][1] == 1.0 and r.per_user["map@5"][1] == 1.0


def test_k_beyond_n_items_pads_with_misses():
    r = Evaluator(HAND, "test").evaluate(_scores(np.zeros((4, 6))))   # ks = 5, 10, 20, 50 with 6 items
    # every pool item is ranked by K = 10: recall 1; u0 precision@50 = 2/50, u1 1/50
    assert r.per_user["recall@10"].tolist() == [1.0, 1.0]
    assert r.per_user["precision@50"] == pytest.approx([0.04, 0.02])


def test_ties_rank_lower_item_id_first():
    ones = [[1] * 6] * 4
    r = Evaluator(HAND, "test", ks=(1, 2, 3)).evaluate(_scores(ones))
    # u0 (item 0 masked): all tied -> 1, 2, 3, ... -> test items {2, 3} at ranks 2, 3
    # u1 (item 4 masked): all tied -> 0, 1, 2, ... -> test item 0 at rank 1
    assert r.per_user["recall@1"].tolist() == [0.0, 1.0]
    assert r.per_user["recall@2"].tolist() == [0.5, 1.0]
    assert r.per_user["recall@3"].tolist() == [1.0, 1.0]
    # a tie across the cut: u0 ranks item 1 (score 2) first, then items 2..5 tie at 1;
    # the lowest id, item 2 (a test item), takes rank 2. Highest-id-first would put item 5 there.
    boundary = [[0, 2, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [0] * 6, [0] * 6]
    again = [Evaluator(HAND, "test", ks=(2,)).evaluate(_scores(boundary)) for _ in range(2)]
    assert again[0].per_user["recall@2"].tolist() == [0.5, 1.0]
    assert all(np.array_equal(again[0].per_user[k], again[1].per_user[k]) for k in again[0].per_user)


def test_top_k_items_hand_cases():
    scores = torch.tensor([[1.0, 3, 3, 2, 3, 2]])
    # order by (score desc, id asc): 1, 2, 4 (score 3), 3, 5 (score 2), 0
    assert top_k_items(scores, 1).tolist() == [[1]]
    assert top_k_items(scores, 2).tolist() == [[1, 2]]        # cut inside the score-3 group
    assert top_k_items(scores, 4).tolist() == [[1, 2, 4, 3]]  # cut inside the score-2 group
    assert top_k_items(scores, 6).tolist() == [[1, 2, 4, 3, 5, 0]]
    assert top_k_items(torch.full((1, 5), -torch.inf), 3).tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("levels", [2, 5, 1000])
def test_top_k_items_matches_a_full_sort_by_score_then_id(levels):
    rng = np.random.default_rng(levels)
    scores = rng.integers(0, levels, size=(64, 300)).astype(np.float32)
    for k in (1, 7, 50, 299, 300):
        got = top_k_items(torch.from_numpy(scores), k).numpy()
        want = np.stack([sorted(range(300), key=lambda i: (-row[i], i))[:k] for row in scores])
        assert np.array_equal(got, want), k


def test_users_without_training_data_are_not_evaluated(monkeypatch):
    # Dataset refuses held-out data of users without training data, so the evaluator's own
    # rule is checked on a dataset built with validation switched off.
    monkeypatch.setattr(Dataset, "validate", lambda self: None)
    ds = _ds(train=[(0, 0), (1, 1)], valid=[(0, 2), (1, 2), (2, 2)], test=[(0, 3), (2, 4), (3, 5)], n_users=5)
    ev = Evaluator(ds, "test")
    # user 0: train + test -> kept; user 1: no test item; users 2, 3: test items, no training data
    assert ev.users.tolist() == [0]
    assert Evaluator(ds, "valid").users.tolist() == [0, 1]
    r = ev.evaluate(_scores(np.zeros((5, 6))))
    assert r.users.tolist() == [0] and all(v.shape == (1,) for v in r.per_user.values())
    orphans_only = _ds(train=[(0, 0)], valid=[(1, 1)], test=[(1, 2)], n_users=2)
    with pytest.raises(ValueError, match="no user"):
        Evaluator(orphans_only, "test")


@pytest.mark.parametrize("batch_size", [1, 3, 4096])
def test_per_user_arrays_are_aligned_with_users(batch_size):
    # 10 users; user u has train {u}, test {(u + 1) % 8}; users 3 and 6 have no test item.
    # Even users get their test item on top (hit@1 = 1), odd users get it last (hit@1 = 0).
    users = [u for u in range(10) if u not in (3, 6)]
    ds = _ds(train=[(u, u % 8) for u in range(10)], valid=[(u, (u + 2) % 8) for u in range(10)],
             test=[(u, (u + 1) % 8) for u in users], n_users=10, n_items=8)
    scores = np.ones((10, 8))
    for u in users:
        scores[u, (u + 1) % 8] = 2.0 if u % 2 == 0 else 0.0
    r = Evaluator(ds, "test", ks=(1,), batch_size=batch_size).evaluate(_scores(scores))
    assert r.users.tolist() == users
    assert r.per_user["hit@1"].tolist() == [1.0 if u % 2 == 0 else 0.0 for u in users]


def test_result_shape_and_types():
    r = Evaluator(HAND, "test", ks=(10, 5)).evaluate(_scores(np.random.default_rng(0).random((4, 6))))
    assert isinstance(r, EvalResult)
    assert set(r.metrics) == set(r.per_user) == {f"{m}@{k}" for m in METRICS for k in (5, 10)}
    assert r.users.dtype == np.int64
    for key, values in r.per_user.items():
        assert values.dtype == np.float64 and values.shape == r.users.shape
        assert r.metrics[key] == pytest.approx(values.mean()) and isinstance(r.metrics[key], float)


def test_owned_scores_are_masked_in_place_with_the_same_result():
    """scores_owned: a fresh tensor is masked where it is (no copy), a view is still copied; the metrics
    and rankings are those of the copying path."""
    table = torch.tensor(np.random.default_rng(2).random((4, 6)), dtype=torch.float32)
    evaluator = Evaluator(HAND, "test", batch_size=2)
    returned = []

    def fresh(users):
        returned.append(table[users] * 1.0)
        return returned[-1]

    copied = evaluator.evaluate(lambda u: table[u] * 1.0, keep_ranking=True)
    owned = evaluator.evaluate(fresh, keep_ranking=True, scores_owned=True)
    assert np.array_equal(copied.top_items, owned.top_items)
    assert all(np.array_equal(copied.per_user[k], owned.per_user[k]) for k in copied.per_user)
    assert any(torch.isinf(out).any() for out in returned)  # masked in place: nothing was copied
    row = table[0].clone()
    expanded = evaluator.evaluate(lambda u: row.unsqueeze(0).expand(u.shape[0], -1), scores_owned=True)
    assert torch.equal(row, table[0]) and expanded.metrics  # a view is never written to


def test_reused_score_blocks_rank_as_fresh_products():
    """ScoreBlocks: one block per shape, refilled by every call (masked in place by the evaluator), gives
    the rankings and metrics of a fresh product per block, also with a short last block."""
    rng = np.random.default_rng(3)
    users_emb = torch.tensor(rng.random((4, 3)), dtype=torch.float32)
    items_emb = torch.tensor(rng.random((6, 3)), dtype=torch.float32)
    blocks = ScoreBlocks(6)
    filled = []

    def into_block(users):
        filled.append(torch.mm(users_emb[users], items_emb.T, out=blocks.take(users.numel(), users_emb)))
        return filled[-1]

    evaluator = Evaluator(HAND, "valid", batch_size=2)      # 3 users: blocks of 2 and 1
    fresh = evaluator.evaluate(lambda u: users_emb[u] @ items_emb.T, keep_ranking=True, scores_owned=True)
    for _ in range(2):                                      # the second pass refills the same two blocks
        reused = evaluator.evaluate(into_block, keep_ranking=True, scores_owned=True)
        assert np.array_equal(fresh.top_items, reused.top_items)
        assert all(np.array_equal(fresh.per_user[k], reused.per_user[k]) for k in fresh.per_user)
    assert len({id(block) for block in filled}) == 2 and filled[0] is filled[2]
    assert blocks.take(2, users_emb).shape == (2, 6) and blocks.take(2, users_emb.double()).dtype == torch.float64


def test_score_fn_contract():
    table = torch.tensor(np.random.default_rng(1).random((4, 6)), dtype=torch.float32)
    seen, returned = [], []

    def score_fn(users):
        seen.append((users.dtype, users.device, torch.is_grad_enabled()))
        out = table[users]
        returned.append((out, out.clone()))
        return out

    Evaluator(HAND, "test", batch_size=1).evaluate(score_fn, device="cpu")
    assert seen == [(torch.int64, torch.device("cpu"), False)] * 2
    assert all(torch.equal(out, copy) for out, copy in returned)      # masking works on a copy
    # integer scores are accepted and ranked like floats
    as_int = Evaluator(HAND, "test").evaluate(lambda u: (table[u] * 100).long())
    as_float = Evaluator(HAND, "test").evaluate(lambda u: (table[u] * 100).long().float())
    assert all(np.array_equal(as_int.per_user[k], as_float.per_user[k]) for k in as_int.per_user)
    # scores from a trainable model need no detach: evaluation runs under no_grad
    weights = torch.nn.Parameter(torch.randn(4, 6))
    Evaluator(HAND, "test").evaluate(lambda u: weights[u] * 2)


def test_bad_scores_and_arguments_are_errors():
    ev = Evaluator(HAND, "test")
    with pytest.raises(ValueError, match=r"expected a tensor of shape \(2, 6\)"):
        ev.evaluate(lambda u: torch.zeros(len(u), 5))
    with pytest.raises(ValueError, match="expected a tensor"):
        ev.evaluate(lambda u: np.zeros((len(u), 6)))
    nan = torch.zeros(4, 6)
    nan[1, 3] = torch.nan
    with pytest.raises(ValueError, match=r"NaN scores for 1 user\(s\), e.g. user ids \[1\]"):
        ev.evaluate(lambda u: nan[u])
    with pytest.raises(ValueError, match="split"):
        Evaluator(HAND, "train")
    with pytest.raises(ValueError, match="ks"):
        Evaluator(HAND, "test", ks=(0, 5))
    with pytest.raises(ValueError, match="batch_size"):
        Evaluator(HAND, "test", batch_size=0)


# --------------------------------------------------------------- brute force
def _random_dataset(seed: int, n_users: int = 40, n_items: int = 30) -> Dataset:
    """Random splits with repeats (held-out items also in train), duplicates, and users without data."""
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(rng.random(n_users) < 0.85)

    def split(low, high, users):
        counts = rng.integers(low, high + 1, users.size)
        return Interactions(np.repeat(users, counts), rng.integers(0, n_items, counts.sum()))
    train = split(1, 8, active)
    held_users = active[rng.random(active.size) < 0.8]
    return Dataset("random", n_users, n_items, train, split(1, 4, held_users), split(1, 6, held_users))


def _brute_force(ds: Dataset, scores: np.ndarray, split: str, ks, mask_valid: bool) -> dict:
    """Per-user metrics by a plain loop over users and the term-by-term definitions (reference only)."""
    def sets(inter):
        out = [set() for _ in range(ds.n_users)]
        for u, i in zip(inter.users.tolist(), inter.items.tolist()):
            out[u].add(i)
        return out
    train, valid, held = sets(ds.train), sets(ds.valid), sets(ds.split(split))
    users, out = [], {f"{m}@{k}": [] for m in METRICS for k in ks}
    for u in range(ds.n_users):
        if not held[u] or not train[u]:
            continue
        users.append(u)
        masked = train[u] | (valid[u] if mask_valid else set())
        ranking = sorted((i for i in range(ds.n_items) if i not in masked), key=lambda i: (-scores[u, i], i))
        n = len(held[u])
        for k in ks:
            hits = [1.0 if i in held[u] else 0.0 for i in ranking[:k]]
            found, depth = sum(hits), min(n, k)
            dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1 / math.log2(r + 2) for r in range(depth))
            ap = sum(h * sum(hits[:r + 1]) / (r + 1) for r, h in enumerate(hits))
            for name, value in (("recall", found / n), ("ndcg", dcg / idcg), ("precision", found / k),
                                ("map", ap / depth), ("hit", float(found > 0))):
                out[f"{name}@{k}"].append(value)
    return {"users": np.array(users), **{key: np.array(v) for key, v in out.items()}}


@pytest.mark.parametrize("split, mask_valid", [("valid", False), ("test", False), ("test", True)])
@pytest.mark.parametrize("batch_size", [7, 4096])
@pytest.mark.parametrize("levels", [4, None])   # 4 score levels: many ties; None: continuous scores
def test_agrees_with_brute_force(split, mask_valid, batch_size, levels):
    ds = _random_dataset(seed=batch_size + (levels or 0))
    rng, shape = np.random.default_rng(7), (ds.n_users, ds.n_items)
    scores = (rng.integers(0, levels, shape) if levels else rng.normal(size=shape)).astype(np.float32)
    ks = (1, 5, 10, 20, 50)   # 50 > n_items = 30
    r = Evaluator(ds, split, ks=ks, mask_valid_in_test=mask_valid, batch_size=batch_size).evaluate(_scores(scores))
    ref = _brute_force(ds, scores, split, ks, mask_valid)
    assert np.array_equal(r.users, ref["users"])
    for key, values in r.per_user.items():
        np.testing.assert_allclose(values, ref[key], rtol=0, atol=1e-12, err_msg=key)


def test_chosen_metrics_only_with_the_same_values():
    scores = _scores(np.random.default_rng(1).random((4, 6)))
    everything = Evaluator(HAND, "test", ks=(1, 3)).evaluate(scores)
    chosen = Evaluator(HAND, "test", ks=(1, 3), metrics=("ndcg", "recall")).evaluate(scores)
    assert set(chosen.metrics) == set(chosen.per_user) == {"recall@1", "recall@3", "ndcg@1", "ndcg@3"}
    for key, value in chosen.metrics.items():
        assert value == everything.metrics[key]
    with pytest.raises(ValueError, match="metrics must be a non-empty subset"):
        Evaluator(HAND, "test", metrics=("auc",))
