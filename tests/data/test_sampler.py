"""Negative sampler: never a training positive, only training items, popularity option ∝ popularity^alpha."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mmdenoise.data import Dataset, Interactions
from mmdenoise.data import sampler as sampler_module
from mmdenoise.data.sampler import InverseCDF, NegativeSampler
from mmdenoise.errors import DataError
from tests.conftest import build_dataset
from tests.planted import planted_dataset


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), n_users=st.integers(2, 60), n_items=st.integers(3, 80),
       max_per_user=st.integers(3, 40), popularity=st.booleans(), alpha=st.sampled_from([0.0, 0.5, 1.0, 2.0]))
def test_never_returns_a_training_positive(seed, n_users, n_items, max_per_user, popularity, alpha):
    ds = build_dataset(n_users=n_users, n_items=n_items, seed=seed, modalities={}, max_per_user=max_per_user)
    sampler = NegativeSampler(ds, popularity=popularity, alpha=alpha)
    seen = ds.interaction_matrix("train").toarray()[:, ds.train_items].sum(axis=1)
    users = np.repeat(np.flatnonzero(seen < ds.train_items.size), 40)  # users who have a negative
    users = np.random.default_rng(seed).permutation(users)
    negatives = sampler.sample(users, np.random.default_rng(seed + 1))
    positives = set(zip(ds.train.users.tolist(), ds.train.items.tolist()))
    assert negatives.dtype == np.int64 and negatives.shape == users.shape
    assert not any((u, i) in positives for u, i in zip(users.tolist(), negatives.tolist()))
    assert np.isin(negatives, ds.train_items).all()


def _conditional(sampler, ds, user):
    """The target distribution for ``user``: sampling distribution restricted to unseen items, float64 [I]."""
    p = sampler.popularity_distribution()
    p[ds.interaction_matrix("train")[user].indices] = 0
    return p / p.sum()


def _chi_square_p(draws, expected):
    observed = np.bincount(draws, minlength=expected.size)[expected > 0]
    return stats.chisquare(observed, expected[expected > 0] * draws.size).pvalue


@pytest.mark.parametrize("popularity,alpha", [(False, 1.0), (True, 1.0), (True, 0.5)])
def test_frequencies_follow_the_sampling_distribution(popularity, alpha):
    ds = planted_dataset(n_users=400, n_items=60, per_user=5, seed=0, modalities={})
    sampler = NegativeSampler(ds, popularity=popularity, alpha=alpha)
    pop = ds.item_popularity[ds.train_items].astype(float) ** (alpha if popularity else 0.0)
    assert np.allclose(sampler.popularity_distribution()[ds.train_items], pop / pop.sum())
    assert sampler.popularity_distribution().sum() == pytest.approx(1.0)
    draws = sampler.sample(np.zeros(100_000, dtype=np.int64), np.random.default_rng(1))
    expected = _conditional(sampler, ds, 0)
    assert np.all(expected[draws] > 0)
    assert _chi_square_p(draws, expected) > 1e-3


@pytest.mark.parametrize("popularity", [False, True])
def test_exact_fallback_has_the_same_distribution(popularity, monkeypatch):
    """With no rejection rounds every draw takes the exact (bisection) path; same distribution."""
    monkeypatch.setattr(sampler_module, "_REJECTION_ROUNDS", 0)
    ds = planted_dataset(n_users=300, n_items=50, per_user=20, seed=3, modalities={})
    sampler = NegativeSampler(ds, popularity=popularity)
    user = int(np.argmax(np.bincount(ds.train.users)))
    draws = sampler.sample(np.full(50_000, user), np.random.default_rng(2))
    expected = _conditional(sampler, ds, user)
    assert np.all(expected[draws] > 0)
    assert _chi_square_p(draws, expected) > 1e-3


def _one_unseen_dataset():
    """User 0 has every training item but item 9 in train; user 1 has item 9 (so it is a candidate)."""
    users = np.r_[np.zeros(9, int), 1, 0, 0, 1, 1]
    items = np.r_[np.arange(9), 9, 10, 11, 10, 11]
    labels = np.r_[np.zeros(10, int), 1, 2, 1, 2]
    splits = [Interactions(users[labels == k], items[labels == k]) for k in range(3)]
    return Dataset("almost-full", 2, 12, *splits)


def test_a_user_with_one_unseen_candidate_always_gets_it():
    sampler = NegativeSampler(_one_unseen_dataset(), popularity=True)
    assert np.all(sampler.sample(np.zeros(1_000, dtype=np.int64), np.random.default_rng(0)) == 9)


def test_a_user_who_saw_every_candidate_is_a_clear_error():
    users = np.r_[0, 0, 0, 1, 0, 1]
    items = np.r_[0, 1, 2, 1, 3, 3]
    labels = np.r_[0, 0, 0, 0, 1, 2]
    splits = [Interactions(users[labels == k], items[labels == k]) for k in range(3)]
    sampler = NegativeSampler(Dataset("full", 2, 4, *splits))
    assert sampler.sample(np.array([1, 1]), np.random.default_rng(0)).tolist() in ([0, 0], [0, 2], [2, 0], [2, 2])
    with pytest.raises(DataError, match="user 0 has interacted with every one of the 3 training items"):
        sampler.sample(np.array([1, 0]), np.random.default_rng(0))
    with pytest.raises(DataError, match="out of range"):
        sampler.sample(np.array([2]), np.random.default_rng(0))


def test_seeded_and_empty():
    ds = planted_dataset(n_users=200, n_items=100, seed=0, modalities={})
    sampler = NegativeSampler(ds)
    a = sampler.sample(ds.train.users, np.random.default_rng(5))
    b = sampler.sample(ds.train.users, np.random.default_rng(5))
    assert np.array_equal(a, b)
    assert sampler.sample(np.zeros(0, dtype=np.int64), np.random.default_rng(0)).shape == (0,)


def test_inverse_cdf_matches_searchsorted():
    rng = np.random.default_rng(0)
    cdf = np.cumsum(rng.pareto(1.0, 500))
    cdf[100:110] = cdf[99]  # zero-probability entries are never drawn
    r = np.r_[rng.random(20_000) * cdf[-1], 0.0, np.nextafter(cdf[-1], 0), cdf[-1]]
    expected = np.minimum(np.searchsorted(cdf, r, side="right"), cdf.size - 1)
    assert np.array_equal(InverseCDF(cdf)(r), expected)
