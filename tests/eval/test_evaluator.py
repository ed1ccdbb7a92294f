"""The full-ranking evaluator: masking, ties, excluded users, per-user arrays, brute-force agreement."""
import numpy as np
import pytest
import torch

from mmdenoise.data import Dataset, Interactions
from mmdenoise.eval import Evaluator
from tests.planted import planted_dataset


def _ds(train, valid, test, n_users=3, n_items=6):
    mk = lambda pairs: Interactions(np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))  # noqa
    return Dataset("hand", n_users, n_items, mk(train), mk(valid), mk(test))


def _scores(table):
    table = torch.tensor(table, dtype=torch.float32)
    return lambda users: table[users]


# user 0: train {0}, valid {1}, test {2, 3};  user 1: train {4}, valid {5}, test {0}
# user 2: no training data and no held-out data (not evaluated)
HAND = _ds(train=[(0, 0), (1, 4)], valid=[(0, 1), (1, 5)], test=[(0, 2), (0, 3), (1, 0)])


def test_training_items_are_masked_and_valid_items_stay_in_the_pool():
    scores = [[9, 8, 7, 1, 0, 0],    # item 0 (train) masked; ranking: 1, 2, 3, ...
              [5, 0, 0, 0, 9, 8],    # item 4 masked; ranking: 5, 0, ...
              [0] * 6]
    ev = Evaluator(HAND, "test", ks=(1, 2, 5))
    r = ev.evaluate(_scores(scores))
    assert r.users.tolist() == [0, 1]
    # user 0: ranks 1:item1 (valid, not a test hit) 2:item2 hit 3:item3 hit -> recall@2 = 1/2
    # user 1: ranks 1:item5 (valid) 2:item0 hit -> recall@2 = 1/1
    assert r.per_user["recall@2"].tolist() == [0.5, 1.0]
    assert r.metrics["recall@2"] == pytest.approx(0.75)
    assert r.per_user["recall@1"].tolist() == [0.0, 0.0]
    # with the option, valid items are masked too: user 0 ranks 2, 3 first; user 1 ranks 0 first
    masked = Evaluator(HAND, "test", ks=(1, 2), mask_valid_in_test=True).evaluate(_scores(scores))
    assert masked.per_user["recall@1"].tolist() == [0.5, 1.0]
    assert masked.per_user["ndcg@2"].tolist() == [pytest.approx(1.0), pytest.approx(1.0)]


def test_validation_split_masks_training_only():
    scores = [[9, 1, 8, 7, 0, 0], [0, 0, 0, 0, 9, 1], [0] * 6]
    r = Evaluator(HAND, "valid", ks=(1, 3)).evaluate(_scores(scores))
    # user 0: ranking 2, 3, 1 -> valid item 1 at rank 3; user 1: ranking 5 first
    assert r.per_user["recall@1"].tolist() == [0.0, 1.0]
    assert r.per_user["recall@3"].tolist() == [1.0, 1.0]
    assert r.per_user["ndcg@3"][0] == pytest.approx(1 / np.log2(4))


def test_ties_rank_lower_item_id_first():
    scores = [[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0] * 6]
    r = Evaluator(HAND, "test", ks=(1, 2)).evaluate(_scores(scores))
    # user 0 (item 0 masked): all tied -> order 1, 2, 3 -> rank1 item1 (miss), rank2 item2 (hit)
    # user 1 (item 4 masked): order 0, 1, ... -> item 0 at rank 1
    assert r.per_user["recall@1"].tolist() == [0.0, 1.0]
    assert r.per_user["recall@2"].tolist() == [0.5, 1.0]
    again = Evaluator(HAND, "test", ks=(1, 2)).evaluate(_scores(scores))
    assert all(np.array_equal(again.per_user[k], r.per_user[k]) for k in r.per_user)


def test_users_without_training_data_are_not_evaluated():
    ds = _ds(train=[(0, 0), (1, 1)], valid=[(0, 2), (1, 2)], test=[(0, 3), (1, 4)], n_users=4)
    ev = Evaluator(ds, "test")
    assert ev.users.tolist() == [0, 1]


def _brute_force(ds, scores, split, k):
    """Per-user recall/ndcg@k with a plain loop (reference only)."""
    train = ds.interaction_matrix("train").tolil().rows
    held = ds.interaction_matrix(split).tolil().rows
    out = {"recall": [], "ndcg": []}
    for u in range(ds.n_users):
        if not held[u] or not train[u]:
            continue
        s = scores[u].copy()
        s[train[u]] = -np.inf
        ranking = sorted(range(ds.n_items), key=lambda i: (-s[i], i))[:k]
        hits = [1.0 if i in held[u] else 0.0 for i in ranking]
        out["recall"].append(sum(hits) / len(held[u]))
        dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / np.log2(r + 2) for r in range(min(len(held[u]), k)))
        out["ndcg"].append(dcg / idcg)
    return {name: np.array(v) for name, v in out.items()}


@pytest.mark.parametrize("batch_size", [7, 4096])
def test_agrees_with_brute_force(batch_size):
    ds = planted_dataset(n_users=60, n_items=50, seed=3, modalities={})
    scores = np.random.default_rng(0).normal(size=(60, 50)).astype(np.float32)
    r = Evaluator(ds, "test", ks=(5, 20), batch_size=batch_size).evaluate(_scores(scores))
    ref = _brute_force(ds, scores, "test", 20)
    assert np.allclose(r.per_user["recall@20"], ref["recall"]) and np.allclose(r.per_user["ndcg@20"], ref["ndcg"])
    assert r.per_user["recall@20"].shape == r.users.shape
