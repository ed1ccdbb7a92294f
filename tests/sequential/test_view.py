"""The sequence view on hand-built datasets: order, truncation, 80/20 split, user split sizes."""
from __future__ import annotations

import numpy as np
import pytest

from mmdenoise.data import Dataset, Interactions
from mmdenoise.errors import DataError
from mmdenoise.sequential.view import PAD, TEST_USER, TRAIN_USER, UNUSED_USER, VALID_USER, SequenceView


def _dataset(rows, n_users, n_items, with_time=True):
    """rows: (user, item, timestamp, split 0/1/2); every user needs a training row."""
    rows = np.array(rows, dtype=np.float64)
    parts = []
    for k in range(3):
        r = rows[rows[:, 3] == k]
        parts.append(Interactions(r[:, 0], r[:, 1], r[:, 2] if with_time else None))
    return Dataset("hand", n_users, n_items, *parts, features={"text": np.eye(n_items, dtype=np.float32) + 1})


# user 0: ten items, timestamps given out of order and across splits, one tie (t=5: items 7 and 3)
USER0 = [(0, 9, 9.0, 0), (0, 7, 5.0, 1), (0, 3, 5.0, 0), (0, 1, 1.0, 2), (0, 4, 2.0, 0),
         (0, 8, 8.0, 0), (0, 2, 3.0, 0), (0, 6, 7.0, 2), (0, 5, 6.0, 0), (0, 0, 10.0, 0)]
USER0_ORDER = [1, 4, 2, 3, 7, 5, 6, 8, 9, 0]


def test_order_is_by_time_then_item_id_across_splits():
    ds = _dataset(USER0 + [(1, 0, 1.0, 0), (1, 1, 2.0, 0), (1, 2, 0.5, 0)], n_users=2, n_items=10)
    view = SequenceView.from_dataset(ds, max_len=4, user_ratios=(1.0, 0.0, 0.0))
    assert view.items[view.indptr[0]:view.indptr[1]].tolist() == USER0_ORDER
    assert view.items[view.indptr[1]:view.indptr[2]].tolist() == [2, 0, 1]
    assert view.lengths.tolist() == [10, 3]


def test_windows_truncate_to_the_last_L_items_left_aligned():
    ds = _dataset(USER0, n_users=1, n_items=10)
    view = SequenceView.from_dataset(ds, max_len=4, user_ratios=(1.0, 0.0, 0.0))
    history, lengths = view.windows(np.array([0, 0, 0]), np.array([1, 3, 9]))
    assert lengths.tolist() == [1, 3, 4]
    assert history.tolist() == [[1, PAD, PAD, PAD], [1, 4, 2, PAD], [5, 6, 8, 9]]
    users, positions = view.train_examples
    assert users.tolist() == [0] * 9 and positions.tolist() == list(range(1, 10))
    _, hist, lens, targets = view.examples(np.array([0, 8]))
    assert targets.tolist() == [4, 0]                     # items at positions 1 and 9
    assert hist.tolist() == [[1, PAD, PAD, PAD], [5, 6, 8, 9]]
    assert lens.tolist() == [1, 4]


def test_held_out_users_split_history_80_targets_20():
    # users of lengths 10, 5, 3 and 2, all held out (ratios put every eligible user in test)
    rows = USER0 + [(1, i, float(i), 0) for i in range(5)] + [(2, i, float(10 - i), 0) for i in range(3)] \
        + [(3, 4, 1.0, 0), (3, 2, 2.0, 1)]
    view = SequenceView.from_dataset(_dataset(rows, n_users=4, n_items=10), max_len=20, user_ratios=(0.0, 0.0, 1.0))
    assert view.users("test").tolist() == [0, 1, 2, 3]
    assert view.history_len.tolist() == [8, 4, 2, 1]       # ⌊0.8 n⌋ clipped to 1..n−1
    targets = view.targets("test")
    assert targets.users.tolist() == [0, 0, 1, 2, 3]
    assert targets.items.tolist() == [9, 0, 4, 0, 2]
    history, lengths = view.histories(np.array([0, 3]))
    assert lengths.tolist() == [8, 1]
    assert history[0, :8].tolist() == USER0_ORDER[:8] and (history[0, 8:] == PAD).all()
    assert history[1].tolist() == [4] + [PAD] * 19
    known = view.history_interactions()
    assert sorted(known.items[known.users == 0].tolist()) == sorted(USER0_ORDER[:8])   # targets never known
    assert len(view.targets("valid")) == 0


def test_user_split_sizes_and_seeding():
    # 20 users with 3 items, one user with a single item, one user with none
    rows = [(u, i, float(i), i) for u in range(20) for i in range(3)] + [(20, 0, 1.0, 0)]
    ds = _dataset(rows, n_users=22, n_items=10)
    view = SequenceView.from_dataset(ds, seed=3)
    counts = {label: int((view.user_split == label).sum()) for label in (TRAIN_USER, VALID_USER, TEST_USER,
                                                                         UNUSED_USER)}
    assert counts == {TRAIN_USER: 17, VALID_USER: 2, TEST_USER: 2, UNUSED_USER: 1}
    assert view.user_split[20] == TRAIN_USER and view.user_split[21] == UNUSED_USER
    again = SequenceView.from_dataset(ds, seed=3)
    other = SequenceView.from_dataset(ds, seed=4)
    assert (again.user_split == view.user_split).all()
    assert not (other.user_split == view.user_split).all()
    # the single-interaction training user contributes no example; the others two each
    assert view.train_examples[0].size == 2 * 16


def test_bad_input_names_the_field():
    ds = _dataset(USER0, n_users=1, n_items=10, with_time=False)
    with pytest.raises(DataError, match="train.timestamp"):
        SequenceView.from_dataset(ds)
    ds = _dataset(USER0, n_users=1, n_items=10)
    with pytest.raises(DataError, match="max_len"):
        SequenceView.from_dataset(ds, max_len=0)
    with pytest.raises(DataError, match="history_ratio"):
        SequenceView.from_dataset(ds, history_ratio=1.0)
    with pytest.raises(DataError, match="no valid users"):
        SequenceView.from_dataset(ds, user_ratios=(1.0, 0.0, 0.0)).evaluation_dataset()
