"""Sparse × dense products with a cheap backward, and fixed sparse matrices as module state.

torch's autograd for ``sparse_csr @ dense`` transposes the sparse matrix on
every backward pass (a COO conversion and a sort), which dominated LightGCN's
epoch time on CPU. Graphs here are fixed data, so their transpose is known up
front: symmetric graphs are their own transpose, others pass it explicitly.

A torch CSR tensor registered as a buffer moves with ``.to()`` but cannot be
deep-copied (``copy.deepcopy`` raises "Cannot access storage of
SparseCsrTensorImpl"), so a model holding one could not be copied (teacher
snapshots, best-state copies). :class:`SparseOperator` therefore keeps the CSR
arrays as plain buffers and re-wraps them on use (no copy, ~3 µs).
"""
from __future__ import annotations

import warnings

import torch
from torch import nn


def csr_tensor(crow_indices: torch.Tensor, col_indices: torch.Tensor, values: torch.Tensor,
               shape: tuple[int, int]) -> torch.Tensor:
    """A torch sparse CSR tensor over the given arrays (no copy, no invariant check)."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it is what we want
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow_indices, col_indices, values, size=shape, check_invariants=False)


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, matrix: torch.Tensor, matrix_t: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(matrix_t)
        return torch.sparse.mm(matrix, dense)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (matrix_t,) = ctx.saved_tensors
        return None, None, torch.sparse.mm(matrix_t, grad_out)


def spmm(matrix: torch.Tensor, dense: torch.Tensor, matrix_t: torch.Tensor | None = None) -> torch.Tensor:
    """matrix [N, M] (sparse, constant) @ dense [M, d] → [N, d], differentiable in ``dense``.

    matrix_t: the transpose of ``matrix`` (sparse [M, N]); None means
    ``matrix`` is symmetric. No gradient flows to the sparse matrix.
    """
    return _SparseMatmul.apply(matrix, matrix if matrix_t is None else matrix_t, dense)


class SparseOperator(nn.Module):
    """A constant sparse matrix M [N, K] as module state: ``op(x)`` = M @ x [N, d] for x [K, d].

    matrix: torch sparse CSR [N, K] (e.g. from ``to_torch_csr``).
    symmetric: M = Mᵀ, so the backward pass reuses M; otherwise Mᵀ is
        built once here and kept alongside.
    Differentiable in x only. The CSR arrays are non-persistent buffers: they
    follow ``.to(device / dtype)`` and ``copy.deepcopy``, and stay out of
    ``state_dict`` (graphs are data, rebuilt from the Dataset, not learnt).
    """

    def __init__(self, matrix: torch.Tensor, *, symmetric: bool):
        super().__init__()
        if matrix.layout != torch.sparse_csr:
            raise ValueError(f"SparseOperator needs a sparse CSR tensor, got layout {matrix.layout}")
        self.shape = tuple(matrix.shape)
        self.symmetric = symmetric
        self._hold("m", matrix)
        if not symmetric:
            self._hold("mt", matrix.t().to_sparse_csr())

    def _hold(self, prefix: str, csr: torch.Tensor) -> None:
        self.register_buffer(f"{prefix}_crow", csr.crow_indices(), persistent=False)
        self.register_buffer(f"{prefix}_col", csr.col_indices(), persistent=False)
        self.register_buffer(f"{prefix}_values", csr.values(), persistent=False)

    def matrix(self) -> torch.Tensor:
        """M as a torch sparse CSR tensor [N, K] on the module's device and dtype."""
        return csr_tensor(self.m_crow, self.m_col, self.m_values, self.shape)

    def transpose(self) -> torch.Tensor:
        """Mᵀ as a torch sparse CSR tensor [K, N]."""
        if self.symmetric:
            return self.matrix()
        return csr_tensor(self.mt_crow, self.mt_col, self.mt_values, (self.shape[1], self.shape[0]))

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        matrix = self.matrix()
        return spmm(matrix, dense, None if self.symmetric else self.transpose())

    def row_block(self, rows: torch.Tensor) -> torch.Tensor:
        """M[rows] as a torch sparse CSR tensor [R, K], for ``rows`` int64 [R] (any order, repeats allowed).

        Each row keeps its stored entries in their stored order, so a product
        with it computes every row exactly as the whole matrix's product does.
        """
        starts = self.m_crow[rows]
        counts = self.m_crow[rows + 1] - starts
        crow = torch.zeros(rows.shape[0] + 1, dtype=self.m_crow.dtype, device=rows.device)
        torch.cumsum(counts, 0, out=crow[1:])
        offsets = torch.arange(int(crow[-1]), dtype=crow.dtype, device=rows.device)
        positions = offsets + (starts - crow[:-1]).repeat_interleave(counts)
        return csr_tensor(crow, self.m_col[positions], self.m_values[positions], (rows.shape[0], self.shape[1]))

    def rows(self, dense: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(M @ dense)[rows] [R, d] for dense [K, d], at the cost of those rows' entries, not all of M's.

        Differentiable in ``dense``: the block's transpose, for the backward
        pass, is built only when a gradient is wanted.
        """
        block = self.row_block(rows)
        if torch.is_grad_enabled() and dense.requires_grad:
            return spmm(block, dense, block.t().to_sparse_csr())
        return torch.sparse.mm(block, dense)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, nnz={self.m_values.numel()}, symmetric={self.symmetric}"
