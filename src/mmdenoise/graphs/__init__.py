"""Graphs as data: user–item adjacency now; item–item kNN and co-occurrence graphs later."""
from .adjacency import bipartite_adjacency, normalized_adjacency, symmetric_normalize, to_torch_csr
from .ops import spmm

__all__ = ["bipartite_adjacency", "normalized_adjacency", "symmetric_normalize", "to_torch_csr", "spmm"]
