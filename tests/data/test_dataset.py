"""``Dataset.from_interactions``: one log of interactions split per user into a Dataset (the builders' and
readers' one way, and the entry point for a user's own data)."""
from __future__ import annotations

import numpy as np
import pytest

from mmdenoise.data import Dataset, read_mmrec, write_mmrec
from mmdenoise.data.split import split_labels
from mmdenoise.errors import DataError


def _log(seed=0, n_users=20, n_items=30):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), rng.integers(3, 15, n_users))
    items = rng.integers(0, n_items - 5, users.size)          # the last 5 items have no interaction
    return users, items, rng.random(users.size) * 1e6


def _distinct(users, items, times):
    rows = np.sort(np.unique(users * 1000 + items, return_index=True)[1])
    return users[rows], items[rows], times[rows]


def test_each_interaction_lands_in_the_split_split_labels_gives_it():
    users, items, times = _distinct(*_log())
    data = Dataset.from_interactions("log", users, items, timestamps=times, seed=3)
    labels = split_labels(users, seed=3)
    for k, split in enumerate(("train", "valid", "test")):
        part = data.split(split)
        assert np.array_equal(part.users, users[labels == k]) and np.array_equal(part.items, items[labels == k])
        assert np.array_equal(part.timestamps, times[labels == k])
    assert (data.n_users, data.n_items) == (20, int(items.max()) + 1)   # largest id + 1 by default


def test_a_repeated_pair_keeps_its_first_row_and_is_warned(caplog):
    users, items, times = _log()
    data = Dataset.from_interactions("log", users, items, timestamps=times)
    kept = _distinct(users, items, times)
    assert len(data.train) + len(data.valid) + len(data.test) == kept[0].size < users.size
    assert sorted(np.concatenate([data.split(s).timestamps for s in ("train", "valid", "test")])) == sorted(kept[2])
    assert f"log: {users.size - kept[0].size} repeated (user, item) row(s) dropped" in caplog.text


def test_chronological_puts_each_users_latest_interaction_in_test():
    users, items, times = _distinct(*_log())
    data = Dataset.from_interactions("log", users, items, timestamps=times, chronological=True)
    latest = {u: times[users == u].max() for u in np.unique(users)}
    assert all(t <= latest[u] for u, t in zip(data.train.users, data.train.timestamps))
    assert all(latest[u] in data.test.timestamps[data.test.users == u] for u in latest)


def test_items_with_features_only_are_kept_and_the_folder_reads_back_the_same(tmp_path):
    users, items, _ = _log()
    text = np.random.default_rng(1).normal(size=(30, 8)).astype(np.float32)
    data = Dataset.from_interactions("shop", users, items, n_items=30, features={"text": text})
    assert data.n_items == 30 and data.train.timestamps is None
    again = read_mmrec(write_mmrec(data, tmp_path / "shop"))
    assert again.fingerprint == data.fingerprint and np.array_equal(again.features["text"], text)


@pytest.mark.parametrize("kwargs, said", [
    ({"items": np.arange(3)}, "got 40 users and 3 items"),
    ({"timestamps": np.zeros(5)}, "5 timestamps for 40 interactions"),
    ({"chronological": True}, "a chronological split needs timestamps"),
    ({"features": {"text": np.zeros((7, 4), np.float32)}}, "feature row count 7 != n_items 4"),
    ({"users": np.full(40, 0.5)}, "user ids must be integers, got 0.5"),
    ({"n_items": 3}, "item id 3 out of range \\[0, 3\\)"),   # caught before pairs are keyed by it
])
def test_bad_logs_are_refused_by_name(kwargs, said):
    log = {"users": np.repeat(np.arange(10), 4), "items": np.tile(np.arange(4), 10), **kwargs}
    with pytest.raises(DataError, match=said):
        Dataset.from_interactions("mine", log.pop("users"), log.pop("items"), **log)
