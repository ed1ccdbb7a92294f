"""Chunked kNN item graph against a brute-force computation; on-disk cache."""
import numpy as np

from mmdenoise.graphs.knn import cached_knn_graph, knn_graph


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


def test_cache(tmp_path):
    x = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    a = cached_knn_graph("fp", "text", x, 3, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    b = cached_knn_graph("fp", "text", x, 3, cache_dir=tmp_path)
    assert (a != b).nnz == 0
    cached_knn_graph("fp", "text", x, 4, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


def test_weighted_graph_holds_cosines_and_topk_cosine_agrees():
    import torch
    from mmdenoise.graphs.knn import topk_cosine
    x = np.random.default_rng(2).normal(size=(31, 6)).astype(np.float32)
    x[4] = 0.0  # a zero row: cosine 0 everywhere, still its own first neighbour
    graph = knn_graph(x, 4, weighted=True, chunk_rows=7)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    rows, cols = graph.nonzero()
    assert np.allclose(graph[rows, cols].A1, (unit[rows] * unit[cols]).sum(1), atol=1e-6)
    binary = knn_graph(x, 4, chunk_rows=7)
    assert (binary != (graph != 0).astype(np.float32)).nnz <= 4  # same pattern (zero row: zero weights)
    values, indices = topk_cosine(torch.nn.functional.normalize(torch.from_numpy(x), dim=1), 4, chunk_rows=5)
    assert torch.equal(indices[:, 0], torch.arange(31)) and not values.requires_grad
    assert all(set(indices[i].tolist()) == set(binary[i].indices) for i in range(31))


def test_unknown_backend_is_a_config_error():
    import pytest
    from mmdenoise.errors import ConfigError
    x = np.ones((5, 2), dtype=np.float32)
    with pytest.raises(ConfigError, match="backends: torch, faiss"):
        knn_graph(x, 2, backend="annoy")


def test_faiss_missing_names_the_package(monkeypatch):
    import builtins
    import pytest
    from mmdenoise.errors import ConfigError
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.raises(ConfigError, match="pip install faiss-cpu"):
        knn_graph(np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32), 3, backend="faiss")


def test_faiss_backend_matches_torch():
    import pytest
    pytest.importorskip("faiss")
    x = np.random.default_rng(3).normal(size=(211, 12)).astype(np.float32)
    for include_self in (True, False):
        expected = knn_graph(x, 7, include_self=include_self, weighted=True, chunk_rows=50)
        flat = knn_graph(x, 7, include_self=include_self, weighted=True, backend="faiss", chunk_rows=50)
        assert [set(flat[i].indices) for i in range(211)] == [set(expected[i].indices) for i in range(211)]
        assert np.allclose(flat.toarray(), expected.toarray(), atol=1e-5)
        hnsw = knn_graph(x, 7, include_self=include_self, backend="faiss", faiss_index="hnsw")
        assert np.all(np.diff(hnsw.indptr) == 7)
        assert all((i in set(hnsw[i].indices)) == include_self for i in range(211))
        overlap = np.mean([len(set(hnsw[i].indices) & set(expected[i].indices)) / 7 for i in range(211)])
        assert overlap > 0.9
