"""Graphs as data: the normalised user–item adjacency, chunked item kNN graphs, sparse operators."""
from .adjacency import bipartite_adjacency, clear_cache, normalized_adjacency, symmetric_normalize, to_torch_csr
from .ops import SparseOperator, csr_tensor, spmm

__all__ = ["bipartite_adjacency", "clear_cache", "normalized_adjacency", "symmetric_normalize", "to_torch_csr",
           "SparseOperator", "csr_tensor", "spmm"]
