"""User–item adjacency and sparse operators: hand-computed normalisation, symmetry, zero-degree
nodes, the in-process cache, and gradients / device moves / copies of SparseOperator."""
import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmdenoise.data import Dataset, Interactions
from mmdenoise.graphs import (SparseOperator, bipartite_adjacency, clear_cache, normalized_adjacency, spmm,
                              symmetric_normalize, to_torch_csr)
from mmdenoise.graphs import adjacency as adjacency_module
from tests.planted import planted_dataset


def _hand_dataset(name="hand"):
    # users 0, 1; items 0, 1, 2 (nodes 2, 3, 4). train: u0-i0, u0-i1, u1-i1 (u0-i1 twice); item 2 only in test
    train = Interactions(np.array([0, 0, 1, 0]), np.array([0, 1, 1, 1]))
    held_out = Interactions(np.array([1]), np.array([2]))
    return Dataset(name, 2, 3, train, held_out, held_out)


def _hand_expected():
    # degrees: u0 2, u1 1, i0 1, i1 2, i2 0  ->  Â_ab = 1 / sqrt(d_a d_b) on edges, item 2 all zero
    expected = np.zeros((5, 5))
    expected[0, 2] = expected[2, 0] = 1 / np.sqrt(2 * 1)
    expected[0, 3] = expected[3, 0] = 1 / np.sqrt(2 * 2)
    expected[1, 3] = expected[3, 1] = 1 / np.sqrt(1 * 2)
    return expected


def test_hand_built_normalisation():
    norm = symmetric_normalize(bipartite_adjacency(2, 3, np.array([0, 0, 1]), np.array([0, 1, 1]))).toarray()
    assert np.allclose(norm, _hand_expected())


def test_dataset_graph_matches_hand_values_with_zero_degree_item():
    adj = normalized_adjacency(_hand_dataset())
    assert adj.layout == torch.sparse_csr and adj.dtype == torch.float32 and adj.shape == (5, 5)
    dense = adj.to_dense().double().numpy()
    assert np.allclose(dense, _hand_expected(), atol=1e-7)  # the duplicate u0-i1 counts once
    assert np.isfinite(dense).all() and not dense[4].any() and not dense[:, 4].any()


def test_bipartite_adjacency_merges_duplicates_and_sums_weights():
    users, items = np.array([0, 0, 1]), np.array([1, 1, 0])
    binary = bipartite_adjacency(2, 2, users, items).toarray()
    assert binary[0, 3] == binary[3, 0] == 1.0 and binary[1, 2] == 1.0 and binary.sum() == 4
    weighted = bipartite_adjacency(2, 2, users, items, weights=np.array([0.5, 2.0, 3.0])).toarray()
    assert weighted[0, 3] == weighted[3, 0] == 2.5 and weighted[1, 2] == 3.0


def test_to_torch_csr_round_trip():
    m = sp.random(7, 5, density=0.4, format="coo", random_state=0)
    t = to_torch_csr(m)
    assert t.layout == torch.sparse_csr and t.dtype == torch.float32 and t.shape == (7, 5)
    assert t.crow_indices().dtype == torch.int64
    assert np.allclose(t.to_dense().numpy(), m.toarray(), atol=1e-7)


def test_dataset_graph_is_symmetric_and_degree_normalised():
    ds = planted_dataset(n_users=30, n_items=20, seed=0, modalities={})
    dense = normalized_adjacency(ds).to_dense().double()
    assert dense.shape == (50, 50) and torch.allclose(dense, dense.T)
    assert not dense[:30, :30].any() and not dense[30:, 30:].any()  # bipartite
    r = torch.from_numpy(ds.interaction_matrix("train").toarray()).double()
    du, di = r.sum(1), r.sum(0)
    expected = r / torch.sqrt(du[:, None] * di[None, :]).clamp(min=1e-300)
    assert torch.allclose(dense[:30, 30:], torch.where(r > 0, expected, 0.0), atol=1e-6)


def test_cache_returns_the_same_object_and_evicts_least_recently_used(monkeypatch):
    clear_cache()
    monkeypatch.setattr(adjacency_module, "_CACHE_SIZE", 2)
    a, b, c = (planted_dataset(n_users=20, n_items=12, seed=s, per_user=5, modalities={}) for s in range(3))
    graph_a = normalized_adjacency(a)
    assert normalized_adjacency(a) is graph_a
    graph_b = normalized_adjacency(b)
    assert graph_b is not graph_a
    normalized_adjacency(a)  # a is now the most recently used
    normalized_adjacency(c)  # evicts b
    assert normalized_adjacency(a) is graph_a
    assert normalized_adjacency(b) is not graph_b
    clear_cache()
    assert normalized_adjacency(a) is not graph_a


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


def test_sparse_operator_non_symmetric_forward_and_gradient():
    m = sp.random(6, 4, density=0.5, format="csr", random_state=1, dtype=np.float32)
    op = SparseOperator(to_torch_csr(m), symmetric=False)
    dense = torch.from_numpy(m.toarray())
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.randn(6, 3)
    (op(x) * y).sum().backward()
    assert torch.allclose(op(x), dense @ x, atol=1e-6)
    assert torch.allclose(x.grad, dense.T @ y, atol=1e-6)


def test_sparse_operator_rows_equal_the_whole_product_and_its_gradient():
    keep = sp.diags(np.array([1, 1, 1, 0, 1, 1, 1], dtype=np.float32))  # row 3 empty
    m = (keep @ sp.random(7, 5, density=0.5, format="csr", random_state=2, dtype=np.float32)).tocsr()
    op = SparseOperator(to_torch_csr(m), symmetric=False)
    x = torch.randn(5, 3, requires_grad=True)
    rows = torch.tensor([6, 0, 3, 3])  # any order, repeats, an empty row
    y = torch.randn(4, 3)
    (op.rows(x, rows) * y).sum().backward()
    whole = torch.from_numpy(m.toarray())
    assert torch.equal(op.rows(x, rows), op(x)[rows])
    assert torch.allclose(x.grad, whole[rows].T @ y, atol=1e-6)
    with torch.no_grad():
        assert torch.equal(op.rows(x, rows), op(x)[rows])
    assert op.rows(x, torch.tensor([], dtype=torch.long)).shape == (0, 3)


def test_sparse_operator_moves_copies_and_stays_out_of_state_dict():
    adj = normalized_adjacency(planted_dataset(n_users=30, n_items=20, seed=2, modalities={}))
    op = SparseOperator(adj, symmetric=True)
    x = torch.randn(50, 4)
    assert not op.state_dict()
    clone = copy.deepcopy(op)  # a bare CSR buffer would raise here
    assert torch.equal(clone(x), op(x))
    op.to(torch.float64)
    assert op.matrix().dtype == torch.float64 and adj.dtype == torch.float32  # the cached graph is untouched
    assert torch.allclose(op(x.double()), clone(x).double(), atol=1e-6)
    op.to("meta")
    assert all(b.device.type == "meta" for b in op.buffers())
    with pytest.raises(ValueError, match="sparse CSR"):
        SparseOperator(adj.to_dense(), symmetric=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sparse_operator_on_cuda():
    adj = normalized_adjacency(planted_dataset(n_users=30, n_items=20, seed=3, modalities={}))
    op = SparseOperator(adj, symmetric=True)
    x = torch.randn(50, 4, requires_grad=True)
    expected = op(x)
    op.to("cuda")
    xc = x.detach().to("cuda").requires_grad_()
    out = op(xc)
    out.sum().backward()
    assert out.is_cuda and torch.allclose(out.cpu(), expected.detach(), atol=1e-5)
    assert xc.grad is not None and xc.grad.is_cuda
