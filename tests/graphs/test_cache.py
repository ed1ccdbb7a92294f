"""The one on-disk graph cache: same matrices back, one build per key, a new build when anything in the key
changes, and the default location under the data home."""
import numpy as np
import scipy.sparse as sp

from mmdenoise.graphs import cached_graphs


def _builder(calls):
    def build():
        calls.append(1)
        return {"b": sp.csr_matrix(np.array([[0, 2.5], [1, 0]], dtype=np.float32)),
                "a": sp.csr_matrix(np.eye(3, dtype=np.float64))}
    return build


def test_returns_the_built_matrices_and_builds_once_per_key(tmp_path):
    calls = []
    first = cached_graphs("toy", "fp", {"k": 1}, _builder(calls), version=1, cache_dir=tmp_path)
    again = cached_graphs("toy", "fp", {"k": 1}, _builder(calls), version=1, cache_dir=tmp_path)
    assert len(calls) == 1 and [p.name[:4] for p in tmp_path.iterdir()] == ["toy-"]
    assert list(again) == ["b", "a"]  # the builder's order
    for name in first:
        assert again[name].dtype == first[name].dtype and again[name].shape == first[name].shape
        assert np.array_equal(again[name].toarray(), first[name].toarray())


def test_rebuilds_when_the_fingerprint_a_parameter_the_version_or_the_kind_changes(tmp_path):
    calls = []
    for kind, fingerprint, params, version in [("toy", "fp", {"k": 1}, 1), ("toy", "other", {"k": 1}, 1),
                                               ("toy", "fp", {"k": 2}, 1), ("toy", "fp", {"k": 1}, 2),
                                               ("knn-toy", "fp", {"k": 1}, 1)]:
        cached_graphs(kind, fingerprint, params, _builder(calls), version=version, cache_dir=tmp_path)
    assert len(calls) == 5 and len(list(tmp_path.iterdir())) == 5
    cached_graphs("toy", "fp", {"k": 1}, _builder(calls), version=1, cache_dir=tmp_path)
    assert len(calls) == 5


def test_default_location_is_the_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDENOISE_HOME", str(tmp_path))
    cached_graphs("toy", "fp", {}, _builder([]), version=1)
    assert [p.name[:4] for p in (tmp_path / "cache" / "graphs").iterdir()] == ["toy-"]
