"""The normalisers on hand-worked matrices: unit feature rows, row sums, symmetric, softmax rows, and the
k-per-row symmetric form against the sparse one."""
import numpy as np
import scipy.sparse as sp
import torch

from mmdenoise.graphs import (row_normalize, softmax_rows, symmetric_normalize, symmetric_normalize_topk,
                              topk_cosine, unit_rows)


def test_unit_rows_keeps_zero_rows_and_matches_torch_normalize():
    x = np.array([[3, 4], [0, 0], [-1, 0]], dtype=np.float64)
    u = unit_rows(x)
    assert u.dtype == torch.float32 and torch.equal(u, torch.tensor([[0.6, 0.8], [0, 0], [-1, 0]]))
    y = np.random.default_rng(0).normal(size=(40, 7)).astype(np.float32)
    assert torch.equal(unit_rows(y), torch.nn.functional.normalize(torch.from_numpy(y), dim=1))
    assert not np.shares_memory(unit_rows(y).numpy(), y)  # a copy: the features are never changed


def test_row_normalize():
    m = sp.csr_matrix(np.array([[1, 3, 0], [0, 0, 0], [2, 0, 2]], dtype=np.float32))
    assert np.allclose(row_normalize(m).toarray(), [[0.25, 0.75, 0], [0, 0, 0], [0.5, 0, 0.5]])
    assert row_normalize(m).dtype == np.float64


def test_symmetric_normalize():
    m = sp.csr_matrix(np.array([[0, 1, 3], [1, 0, 0], [3, 0, 0]], dtype=np.float32))  # degrees 4, 1, 3
    expected = np.array([[0, 1 / 2, 3 / np.sqrt(12)], [1 / 2, 0, 0], [3 / np.sqrt(12), 0, 0]])
    assert np.allclose(symmetric_normalize(m).toarray(), expected)
    assert symmetric_normalize(sp.csr_matrix((3, 3))).nnz == 0  # zero degrees stay zero, no NaN


def test_softmax_rows():
    m = sp.csr_matrix(np.array([[0, 2, 1, 0], [0, 0, 0, 0], [5, 0, 0, 5]], dtype=np.float32))
    s = softmax_rows(m).toarray()
    e = np.exp([2.0, 1.0])
    assert np.allclose(s[0], [0, e[0] / e.sum(), e[1] / e.sum(), 0])
    assert not s[1].any() and np.allclose(s[2], [0.5, 0, 0, 0.5])
    big = softmax_rows(sp.csr_matrix(np.array([[1000.0, 999.0]])))  # no overflow
    assert np.isfinite(big.data).all() and np.isclose(big.sum(), 1.0)


def test_topk_form_equals_the_sparse_symmetric_normalisation():
    z = unit_rows(np.abs(np.random.default_rng(1).normal(size=(15, 4))))  # positive cosines: positive degrees
    neighbours = topk_cosine(z, 4)[1]
    values = (z[:, None, :] * z[neighbours]).sum(-1).double().requires_grad_()
    normalised = symmetric_normalize_topk(values, neighbours)
    rows = np.repeat(np.arange(15), 4)
    sparse = sp.csr_matrix((values.detach().numpy().ravel(), (rows, neighbours.numpy().ravel())), shape=(15, 15))
    expected = symmetric_normalize(sparse)[rows, neighbours.numpy().ravel()].A1
    assert np.allclose(normalised.detach().numpy().ravel(), expected, atol=1e-12)
    normalised.sum().backward()
    assert values.grad is not None and torch.isfinite(values.grad).all()
