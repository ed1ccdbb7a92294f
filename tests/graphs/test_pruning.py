"""Degree-sensitive edge pruning: exact kept count, preference for low-degree edges, determinism."""
import numpy as np
import pytest
import torch

from mmdenoise.graphs import edge_keep_weights, normalized_adjacency, pruned_adjacency, sample_edges
from tests.planted import planted_dataset


def _star_and_pairs():
    # user 0 is a hub with 8 items (0..7); users 1..4 each have one private item (8..11)
    users = torch.tensor([0] * 8 + [1, 2, 3, 4])
    items = torch.tensor(list(range(8)) + [8, 9, 10, 11])
    return users, items


def test_weights_are_inverse_sqrt_degree_products():
    users, items = _star_and_pairs()
    weights = edge_keep_weights(users, items, 5, 12)
    assert weights.dtype == torch.float32
    assert torch.allclose(weights[:8], torch.full((8,), 8 ** -0.5)) and torch.allclose(weights[8:], torch.ones(4))


def test_kept_count_is_exact_and_edges_are_distinct():
    weights = torch.rand(1000) + 0.01
    for ratio in (0.2, 0.5, 0.999, 1.0):
        kept = sample_edges(weights, ratio)
        assert kept.numel() == int(ratio * 1000) and kept.unique().numel() == kept.numel()
    with pytest.raises(ValueError, match="keep_ratio"):
        sample_edges(weights, 0.0)


def test_low_degree_edges_are_kept_more_often():
    users, items = _star_and_pairs()
    weights = edge_keep_weights(users, items, 5, 12)
    torch.manual_seed(0)
    counts = torch.zeros(12)
    for _ in range(2000):
        counts[sample_edges(weights, 0.5)] += 1
    hub, private = counts[:8].mean() / 2000, counts[8:].mean() / 2000
    assert counts.sum() == 2000 * 6
    assert private > 0.7 and hub < 0.42 and private > 1.8 * hub, (private, hub)  # weight 1 vs 1/√8


def test_deterministic_under_a_torch_seed_and_normalised():
    ds = planted_dataset(n_users=40, n_items=30, seed=0, modalities={})
    users, items = torch.from_numpy(ds.train.users), torch.from_numpy(ds.train.items)
    weights = edge_keep_weights(users, items, ds.n_users, ds.n_items)
    torch.manual_seed(5)
    a = pruned_adjacency(ds.n_users, ds.n_items, users, items, weights, 0.3).to_dense()
    torch.manual_seed(5)
    b = pruned_adjacency(ds.n_users, ds.n_items, users, items, weights, 0.3).to_dense()
    assert torch.equal(a, b)
    c = pruned_adjacency(ds.n_users, ds.n_items, users, items, weights, 0.3).to_dense()
    assert not torch.equal(a, c)
    assert (a > 0).sum() == 2 * int(0.3 * len(ds.train)) and torch.allclose(a, a.T)
    full = pruned_adjacency(ds.n_users, ds.n_items, users, items, weights, 1.0).to_dense()
    assert torch.allclose(full, normalized_adjacency(ds).to_dense(), atol=1e-6)


def test_built_where_the_weights_are_with_the_numbers_of_the_scipy_construction():
    """The device-side build (unique keys, bincount degrees) against scipy's bipartite matrix and
    symmetric normaliser on the same kept edges, duplicates included: the same float32 CSR, bit for bit."""
    from mmdenoise.graphs.adjacency import bipartite_adjacency, to_torch_csr
    from mmdenoise.graphs.normalize import symmetric_normalize
    from mmdenoise.graphs.pruning import sample_edges
    ds = planted_dataset(n_users=60, n_items=45, seed=2, modalities={})
    users = torch.from_numpy(np.r_[ds.train.users, ds.train.users[:25]])  # 25 duplicated edges
    items = torch.from_numpy(np.r_[ds.train.items, ds.train.items[:25]])
    weights = edge_keep_weights(users, items, ds.n_users, ds.n_items)
    for ratio in (0.4, 1.0):
        torch.manual_seed(3)
        built = pruned_adjacency(ds.n_users, ds.n_items, users, items, weights, ratio)
        torch.manual_seed(3)
        kept = sample_edges(weights, ratio).numpy()
        reference = to_torch_csr(symmetric_normalize(bipartite_adjacency(
            ds.n_users, ds.n_items, users.numpy()[kept], items.numpy()[kept])))
        assert torch.equal(built.crow_indices(), reference.crow_indices())
        assert torch.equal(built.col_indices(), reference.col_indices())
        assert torch.equal(built.values(), reference.values())
