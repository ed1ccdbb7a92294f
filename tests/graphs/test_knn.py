"""Chunked kNN item graph against a brute-force computation; on-disk cache."""
import numpy as np

from mmdenoise.graphs.knn import cached_knn_graph, knn_graph, row_normalize


def _brute(x, k, include_self):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    np.fill_diagonal(sims, np.inf if include_self else -np.inf)
    return [set(np.argsort(-row, kind="stable")[:k]) for row in sims]


def test_matches_brute_force_in_small_chunks():
    x = np.random.default_rng(0).normal(size=(53, 7)).astype(np.float32)
    for include_self in (True, False):
        graph = knn_graph(x, 5, include_self=include_self, chunk_rows=8)
        assert graph.shape == (53, 53) and np.all(np.diff(graph.indptr) == 5)
        expected = _brute(x, 5, include_self)
        assert [set(graph[i].indices) for i in range(53)] == expected
        assert all((i in expected[i]) == include_self for i in range(53))


def test_row_normalize_and_cache(tmp_path):
    x = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    a = cached_knn_graph("fp", "text", x, 3, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    b = cached_knn_graph("fp", "text", x, 3, cache_dir=tmp_path)
    assert (a != b).nnz == 0
    cached_knn_graph("fp", "text", x, 4, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    assert np.allclose(np.asarray(row_normalize(a).sum(axis=1)).ravel(), 1.0)
