"""User–item adjacency: hand-computed normalisation, symmetry, cache, zero-degree nodes, spmm gradient."""
import numpy as np
import torch

from mmdenoise.graphs import bipartite_adjacency, normalized_adjacency, spmm, symmetric_normalize
from tests.planted import planted_dataset


def test_hand_built_normalisation():
    # users 0, 1; items 0, 1, 2 (nodes 2, 3, 4). edges: u0-i0, u0-i1, u1-i1; item 2 isolated
    a = bipartite_adjacency(2, 3, np.array([0, 0, 1]), np.array([0, 1, 1]))
    norm = symmetric_normalize(a).toarray()
    # degrees: u0 2, u1 1, i0 1, i1 2, i2 0  ->  Â_ij = 1 / sqrt(d_i d_j)
    expected = np.zeros((5, 5))
    expected[0, 2] = expected[2, 0] = 1 / np.sqrt(2 * 1)
    expected[0, 3] = expected[3, 0] = 1 / np.sqrt(2 * 2)
    expected[1, 3] = expected[3, 1] = 1 / np.sqrt(1 * 2)
    assert np.allclose(norm, expected)
    assert np.all(np.isfinite(norm)) and not norm[4].any()


def test_dataset_graph_is_symmetric_cached_and_torch_csr():
    ds = planted_dataset(n_users=30, n_items=20, seed=0, modalities={})
    adj = normalized_adjacency(ds)
    assert adj.layout == torch.sparse_csr and adj.shape == (50, 50)
    dense = adj.to_dense()
    assert torch.allclose(dense, dense.T)
    assert normalized_adjacency(ds) is adj


def test_spmm_gradient_matches_dense():
    ds = planted_dataset(n_users=30, n_items=20, seed=1, modalities={})
    adj = normalized_adjacency(ds)
    x = torch.randn(50, 8, requires_grad=True)
    y = torch.randn(50, 8)
    (spmm(adj, spmm(adj, x)) * y).sum().backward()
    grad = x.grad.clone()
    x.grad = None
    dense = adj.to_dense()
    (dense @ (dense @ x) * y).sum().backward()
    assert torch.allclose(grad, x.grad, atol=1e-6)
