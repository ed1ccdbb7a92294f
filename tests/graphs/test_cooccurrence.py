"""Co-occurrence top-k against a dense brute-force count (DRAGON's user graph; DA-MRS's IIB, Eq. 2); tie rule;
minimum count; disk cache."""
import numpy as np
import pytest

from mmdenoise.graphs import behaviour_graph, cached_cooccurrence_graph, cooccurrence_graph


def _brute(users, items, n_users, n_items, k, min_count=1):
    r = np.zeros((n_users, n_items))
    r[users, items] = 1.0
    c = r @ r.T
    np.fill_diagonal(c, 0)
    expected = np.zeros_like(c)
    for u in range(n_users):
        order = sorted((v for v in range(n_users) if c[u, v] >= max(min_count, 1)), key=lambda v: (-c[u, v], v))[:k]
        expected[u, order] = c[u, order]
    return expected


def test_matches_brute_force_in_small_chunks():
    rng = np.random.default_rng(0)
    n_users, n_items = 47, 15
    users, items = rng.integers(0, n_users, 300), rng.integers(0, n_items, 300)  # with duplicates
    for k in (1, 3, 40):
        graph = cooccurrence_graph(users, items, n_users, n_items, k, chunk_rows=6)
        assert graph.dtype == np.float32 and graph.shape == (n_users, n_users)
        assert np.array_equal(graph.toarray(), _brute(users, items, n_users, n_items, k))
        assert np.all(np.diff(graph.indptr) <= k) and graph.diagonal().sum() == 0
    for min_count in (2, 3):
        graph = cooccurrence_graph(users, items, n_users, n_items, 4, min_count=min_count, chunk_rows=6)
        assert np.array_equal(graph.toarray(), _brute(users, items, n_users, n_items, 4, min_count))


def test_ties_prefer_lower_user_ids_and_lonely_users_get_empty_rows():
    # users 0..4 all share item 0 (count 1 each); user 5 shares nothing
    users, items = np.array([0, 1, 2, 3, 4, 5]), np.array([0, 0, 0, 0, 0, 1])
    graph = cooccurrence_graph(users, items, 6, 2, 2)
    assert list(graph[0].indices) == [1, 2] and list(graph[3].indices) == [0, 1]
    assert list(graph[4].indices) == [0, 1] and graph[5].nnz == 0


def test_cache(tmp_path):
    rng = np.random.default_rng(1)
    users, items = rng.integers(0, 20, 80), rng.integers(0, 10, 80)
    a = cached_cooccurrence_graph("fp", users, items, 20, 10, 5, cache_dir=tmp_path)
    b = cached_cooccurrence_graph("fp", users, items, 20, 10, 5, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1 and (a != b).nnz == 0
    cached_cooccurrence_graph("fp", users, items, 20, 10, 6, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 2


# ------------------------------------------------------------- DA-MRS's IIB
def test_behaviour_graph_against_dense_counts():
    rng = np.random.default_rng(1)
    users, items = np.nonzero(rng.random((30, 12)) < 0.35)
    counts = _brute(items, users, 12, 30, k=12)  # every co-occurrence count, diagonal zero
    k, min_count = 3, 2
    for weights in ("count", "binary"):
        graph = behaviour_graph(users, items, 30, 12, k, min_count, weights=weights, chunk_rows=5)
        assert graph.dtype == np.float32
        expected = np.eye(12, dtype=np.float32)
        for i in range(12):
            candidates = [j for j in range(12) if j != i and counts[i, j] >= min_count]
            for j in sorted(candidates, key=lambda j: (-counts[i, j], j))[:k]:
                expected[i, j] = counts[i, j] if weights == "count" else 1.0
        assert np.array_equal(graph.toarray(), expected)


def test_behaviour_graph_counts_each_user_once():
    users, items = np.array([0, 0, 0, 1, 1, 2, 2]), np.array([0, 0, 1, 0, 1, 1, 2])  # (0, 0) twice
    graph = behaviour_graph(users, items, 3, 3, 10, 2).toarray()
    assert np.array_equal(graph, [[1, 2, 0], [2, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="valid: count, binary"):
        behaviour_graph(users, items, 3, 3, 10, 2, weights="tfidf")
