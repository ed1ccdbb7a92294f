"""Negative sampler: never a training positive, only training items, popularity option ∝ popularity."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmdenoise.data.sampler import NegativeSampler
from tests.planted import planted_dataset


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n_users=st.integers(5, 60), n_items=st.integers(12, 80),
       per_user=st.integers(3, 10), popularity=st.booleans())
def test_never_returns_a_training_positive(seed, n_users, n_items, per_user, popularity):
    ds = planted_dataset(n_users=n_users, n_items=n_items, per_user=per_user, seed=seed, n_clusters=2,
                         modalities={})
    sampler = NegativeSampler(ds, popularity=popularity)
    users = np.repeat(np.arange(n_users), 50)
    negatives = sampler.sample(users, np.random.default_rng(seed))
    positives = set(zip(ds.train.users.tolist(), ds.train.items.tolist()))
    assert not any((u, i) in positives for u, i in zip(users.tolist(), negatives.tolist()))
    assert np.isin(negatives, ds.train_items).all()


def test_uniform_and_popularity_frequencies():
    ds = planted_dataset(n_users=400, n_items=60, per_user=5, seed=0, modalities={})
    users = np.full(200_000, 0)
    seen = ds.interaction_matrix("train")[0].indices
    for popularity in (False, True):
        sampler = NegativeSampler(ds, popularity=popularity)
        freq = np.bincount(sampler.sample(users, np.random.default_rng(1)), minlength=60) / users.size
        expected = sampler.probabilities()
        expected[seen] = 0
        expected /= expected.sum()
        big = expected > 0.005
        assert np.all(np.abs(freq[big] - expected[big]) / expected[big] < 0.1)
        assert freq[seen].sum() == 0
    pop = ds.item_popularity[ds.train_items]
    probs = NegativeSampler(ds, popularity=True).probabilities()[ds.train_items]
    assert np.allclose(probs, pop / pop.sum())


def test_vectorised_and_seeded():
    ds = planted_dataset(n_users=200, n_items=100, seed=0, modalities={})
    sampler = NegativeSampler(ds)
    a = sampler.sample(ds.train.users, np.random.default_rng(5))
    b = sampler.sample(ds.train.users, np.random.default_rng(5))
    assert np.array_equal(a, b)
