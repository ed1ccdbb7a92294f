"""Sparse × dense products with a cheap backward.

torch's autograd for ``sparse_csr @ dense`` transposes the sparse matrix on
every backward pass (a COO conversion and a sort), which dominated LightGCN's
epoch time on CPU. Graphs here are fixed data, so their transpose is known up
front: symmetric graphs are their own transpose, others pass it explicitly.
"""
from __future__ import annotations

import torch


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
