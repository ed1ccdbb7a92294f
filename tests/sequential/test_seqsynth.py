"""The planted sequential preset: its truth is what the module docstring promises."""
from __future__ import annotations

import numpy as np
import pytest

from mmdenoise.data.seqsynth import SEQ_PRESETS, generate_sequential, read_seq_truth
from mmdenoise.errors import DataError
from mmdenoise.sequential import SequenceView


def test_planted_truth_is_consistent(seq_tiny, seq_tiny_folder):
    truth = read_seq_truth(seq_tiny_folder)
    spec = SEQ_PRESETS["seq-tiny"]
    assert truth.modalities == spec.modalities and sorted(seq_tiny.features) == sorted(spec.modalities)
    view = SequenceView.from_dataset(seq_tiny)
    users = np.repeat(np.arange(seq_tiny.n_users), view.lengths)
    items = view.items
    assert ((spec.min_length <= view.lengths) & (view.lengths <= spec.max_length)).all()
    keys = users * seq_tiny.n_items + items
    assert np.unique(keys).size == keys.size                                  # no user repeats an item
    poi = np.isin(keys, truth.poi_keys(seq_tiny.n_items))
    in_cluster = truth.item_cluster[items, truth.driving_modality[users]] == truth.interest_cluster[users]
    assert (poi == in_cluster).all()                                          # POI ⇔ in the user's cluster
    assert 0.4 < poi.mean() < 0.6                                             # poi_rate 0.5
    # each modality's features separate its own clusters: the nearest centroid recovers them
    for m, name in enumerate(truth.modalities):
        x = seq_tiny.features[name]
        labels = truth.item_cluster[:, m]
        centroids = np.stack([x[labels == c].mean(0) for c in range(spec.clusters)])
        nearest = ((x[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
        assert (nearest == labels).mean() > 0.95


def test_same_seed_same_files(tmp_path, seq_tiny_folder):
    again = generate_sequential("seq-tiny", seed=0, out=tmp_path / "again")
    for f in ("synth-seq-tiny.inter", "seq_truth.npz", "text_feat.npy"):
        assert (again / f).read_bytes() == (seq_tiny_folder / f).read_bytes()
    with pytest.raises(DataError, match="presets: seq-tiny, seq-small"):
        generate_sequential("seq-huge", out=tmp_path / "x")
    assert read_seq_truth(tmp_path) is None
