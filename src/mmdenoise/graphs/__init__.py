"""Graphs as data: the normalised user–item adjacency, chunked item kNN graphs (plain, and DA-MRS's
denoised DIIG), co-occurrence graphs (DRAGON's user graph, DA-MRS's IIB), degree-sensitive edge pruning,
the normalisers, the one on-disk cache, sparse operators."""
from .adjacency import bipartite_adjacency, clear_cache, normalized_adjacency, to_torch_csr
from .cache import cached_graphs
from .cooccurrence import behaviour_graph, cached_cooccurrence_graph, cooccurrence_graph
from .knn import (cached_denoised_knn_graphs, cached_knn_graph, denoised_knn_graphs, knn_graph, masked_topk_cosine,
                  topk_cosine)
from .normalize import row_normalize, softmax_rows, symmetric_normalize, symmetric_normalize_topk, unit_rows
from .ops import SparseOperator, csr_tensor, spmm
from .pruning import edge_keep_weights, pruned_adjacency, sample_edges

__all__ = ["bipartite_adjacency", "clear_cache", "normalized_adjacency", "to_torch_csr",
           "cached_graphs",
           "behaviour_graph", "cached_cooccurrence_graph", "cooccurrence_graph",
           "cached_denoised_knn_graphs", "cached_knn_graph", "denoised_knn_graphs", "knn_graph",
           "masked_topk_cosine", "topk_cosine",
           "row_normalize", "softmax_rows", "symmetric_normalize", "symmetric_normalize_topk", "unit_rows",
           "SparseOperator", "csr_tensor", "spmm",
           "edge_keep_weights", "pruned_adjacency", "sample_edges"]
