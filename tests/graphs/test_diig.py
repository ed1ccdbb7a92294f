"""The masked chunked top-k against a dense reference; DA-MRS's DIIG (Eq. 1) on a hand-worked example and
against a dense brute force; its disk cache."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mmdenoise.data.info import mean_pairwise_cosine
from mmdenoise.graphs import (cached_denoised_knn_graphs, denoised_knn_graphs, masked_topk_cosine, topk_cosine,
                              unit_rows)
from mmdenoise.graphs.knn import consistency_mask


def _neighbours(graph: sp.csr_matrix) -> list[set]:
    return [set(graph[i].indices.tolist()) for i in range(graph.shape[0])]


# ------------------------------------------------------------ masked top-k
def _dense_masked_topk(x: np.ndarray, allowed: np.ndarray, k: int, include_self: bool) -> list[list[int]]:
    """The top-k of every row of the dense cosine matrix among allowed entries, best first (ties: lower id)."""
    s = x.astype(np.float64) / np.linalg.norm(x, axis=1, keepdims=True)
    s = s @ s.T
    out = []
    for i, row in enumerate(s):
        candidates = [j for j in range(len(row)) if allowed[i, j] and j != i]
        ranked = sorted(candidates, key=lambda j: (-row[j], j))
        out.append(([i] if include_self else []) + ranked[:k - include_self])
    return out


@pytest.mark.parametrize("include_self", [True, False])
def test_masked_topk_equals_a_dense_reference_in_chunks(include_self):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(23, 5)).astype(np.float32)
    allowed = rng.random((23, 23)) < 0.4
    allowed[3] = False  # a row that allows nothing: only the item itself (or nothing) survives
    k = 4
    calls = []

    def mask(sims):
        calls.append(sims[0].shape[0])
        start = sum(calls[:-1])
        return [torch.from_numpy(allowed[start:start + sims[0].shape[0]])]

    [(values, indices)] = masked_topk_cosine([unit_rows(x)], k, mask, include_self=include_self, chunk_rows=5)
    assert calls == [5, 5, 5, 5, 3] and values.shape == indices.shape == (23, k)
    expected = _dense_masked_topk(x, allowed, k, include_self)
    for i in range(23):
        found = indices[i][values[i] > -torch.inf].tolist()
        assert found == expected[i]  # same neighbours, same order (no ties among random cosines)
    assert torch.all(values[3, int(include_self):] == -torch.inf)


def test_unmasked_topk_of_several_modalities_is_topk_cosine_of_each():
    rng = np.random.default_rng(5)
    units = [unit_rows(rng.normal(size=(30, d))) for d in (4, 9)]
    for include_self in (True, False):
        together = masked_topk_cosine(units, 6, include_self=include_self, chunk_rows=7)
        for x, (values, indices) in zip(units, together):
            assert all(map(torch.equal, (values, indices), topk_cosine(x, 6, include_self=include_self, chunk_rows=7)))
            # other chunks: the same neighbours; the similarities may differ in the last float32 bit
            other_values, other_indices = topk_cosine(x, 6, include_self=include_self, chunk_rows=11)
            assert torch.equal(indices, other_indices) and torch.allclose(values, other_values, atol=1e-6)


# ------------------------------------------------------------------- DIIG
# Five items, two 2-d modalities (rows are items):
#   a: x0 = x1 = (1, 0), x2 = x3 = (0, 1), x4 = (.8, .6)
#      cos: 0-1 = 2-3 = 1, 0-4 = 1-4 = .8, 2-4 = 3-4 = .6, 0-2 = 0-3 = 1-2 = 1-3 = 0
#      mean = ‖Σ x̂‖² / 25 = ‖(2.8, 2.6)‖² / 25 = 14.6 / 25 = .584
#      kept (≥ .584, ≠ 0): 0-1, 2-3, 0-4, 1-4, 2-4, 3-4
#   b: x0 = (1, 0), x1 = (.6, .8), x2 = (0, 1), x3 = (.8, .6), x4 = (1, 0)
#      cos: 0-4 = 1, 1-3 = .96, 0-3 = 1-2 = 3-4 = .8, 0-1 = 1-4 = 2-3 = .6, 0-2 = 2-4 = 0
#      mean = ‖(3.4, 2.4)‖² / 25 = 17.32 / 25 = .6928
#      kept: 0-4, 1-3, 0-3, 1-2, 3-4
#   consistent (kept in both): 0-4, 3-4 (and every i-i).
#   k = 2: self + the best consistent neighbour: 0:{0,4} 1:{1} 2:{2} 3:{3,4}
#      4:{4,0} in both modalities (a: .8 > .6, b: 1 > .8).
#   k = 3: row 4 keeps 3 as well.
HAND_FEATURES = {
    "a": np.array([[1, 0], [1, 0], [0, 1], [0, 1], [.8, .6]], dtype=np.float32),
    "b": np.array([[1, 0], [.6, .8], [0, 1], [.8, .6], [1, 0]], dtype=np.float32),
}


def test_diig_hand_example():
    expected = {2: [{0, 4}, {1}, {2}, {3, 4}, {4, 0}], 3: [{0, 4}, {1}, {2}, {3, 4}, {4, 0, 3}]}
    for k, rows in expected.items():
        for chunk_rows in (None, 2):
            graphs = denoised_knn_graphs(HAND_FEATURES, k, chunk_rows=chunk_rows)
            assert list(graphs) == ["a", "b"]
            for graph in graphs.values():
                assert graph.shape == (5, 5) and graph.dtype == np.float32 and set(graph.data) == {1.0}
                assert _neighbours(graph) == rows


def test_diig_threshold_is_the_mean_with_the_diagonal():
    units = unit_rows(HAND_FEATURES["a"]).numpy()
    assert mean_pairwise_cosine(units, include_self=True, normalized=True) == pytest.approx(0.584, abs=1e-6)
    # the consistency mask on the hand example's full matrices: 0-4 and 3-4 in both directions, and i-i
    sims = [torch.from_numpy(unit_rows(x).numpy() @ unit_rows(x).numpy().T) for x in HAND_FEATURES.values()]
    masks = consistency_mask([0.584, 0.6928])(sims)
    pairs = {(0, 4), (4, 0), (3, 4), (4, 3)} | {(i, i) for i in range(5)}
    for mask in masks:
        assert {tuple(p) for p in mask.nonzero().tolist()} == pairs


def _brute_diig(features, k):
    sims = []
    for x in features.values():
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sims.append(x @ x.T)
    keep = np.logical_and.reduce([(s >= s.mean()) & (s != 0) for s in sims])
    out = []
    for s in sims:
        ranked = np.where(keep & (s > 0), s, -np.inf)
        np.fill_diagonal(ranked, np.inf)
        out.append([set(j for j in np.argsort(-row, kind="stable")[:k] if row[j] > -np.inf) for row in ranked])
    return out


def test_diig_matches_dense_brute_force_in_chunks():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(4, 6))
    features = {m: (np.eye(4)[np.arange(40) % 4] @ basis + 0.8 * rng.normal(size=(40, 6))).astype(np.float32)
                for m in ("a", "b", "c")}
    graphs = denoised_knn_graphs(features, 5, chunk_rows=7)
    assert [_neighbours(g) for g in graphs.values()] == _brute_diig(features, 5)
    # one modality of positive features, k = I: every entry at or above the mean survives
    dense_positive = {"a": np.abs(features["a"])}
    one = denoised_knn_graphs(dense_positive, 40)["a"]
    s = dense_positive["a"] / np.linalg.norm(dense_positive["a"], axis=1, keepdims=True)
    s = s @ s.T
    assert (one.toarray() > 0).sum() == ((s >= s.mean()) | np.eye(40, dtype=bool)).sum()


def test_diig_is_cached_per_parameter(tmp_path):
    a = cached_denoised_knn_graphs("fp", HAND_FEATURES, 2, cache_dir=tmp_path)
    b = cached_denoised_knn_graphs("fp", HAND_FEATURES, 2, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    assert list(b) == ["a", "b"] and all((a[m] != b[m]).nnz == 0 and b[m].dtype == np.float32 for m in a)
    cached_denoised_knn_graphs("fp", HAND_FEATURES, 3, cache_dir=tmp_path)
    cached_denoised_knn_graphs("other", HAND_FEATURES, 2, cache_dir=tmp_path)
    cached_denoised_knn_graphs("fp", {"b": HAND_FEATURES["b"], "a": HAND_FEATURES["a"]}, 2, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == 4
