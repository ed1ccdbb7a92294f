"""Graphs as data: user–item adjacency now; item–item kNN and co-occurrence graphs later."""
from .adjacency import bipartite_adjacency, normalized_adjacency, symmetric_normalize, to_torch_csr

__all__ = ["bipartite_adjacency", "normalized_adjacency", "symmetric_normalize", "to_torch_csr"]
