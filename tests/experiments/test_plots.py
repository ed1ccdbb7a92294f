"""Figures from run folders: written, readable as PNG, and clear errors for runs that cannot be plotted."""
import numpy as np
import pytest

from mmdenoise.errors import MMDenoiseError
from mmdenoise.experiments.plots import score_distributions
from mmdenoise.training import record


def _fake_run(path, model, scores=True, noisy=True):
    path.mkdir()
    record.write_result(path, {"model": model, "denoiser": "tce", "seed": 0, "valid": {}, "test": {},
                              "dataset": {"name": "d", "fingerprint": "f"}})
    if scores:
        rng = np.random.default_rng(0)
        mask = np.arange(200) < 40
        record.write_scores(path, rng.normal(size=200) - mask, mask if noisy else None)
    return path


def test_score_distributions_writes_one_png_with_a_panel_per_run(tmp_path):
    runs = [_fake_run(tmp_path / "a", "lightgcn"), _fake_run(tmp_path / "b", "freedom")]
    out = score_distributions(runs, tmp_path / "figs" / "scores.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image
    height, width = matplotlib.image.imread(out).shape[:2]
    assert width > 1.8 * height  # two panels side by side


def test_score_distributions_explains_unplottable_runs(tmp_path):
    with pytest.raises(MMDenoiseError, match="no per-interaction judgement"):
        score_distributions([_fake_run(tmp_path / "none", "mf", scores=False)], tmp_path / "x.png")
    with pytest.raises(MMDenoiseError, match="no planted added"):
        score_distributions([_fake_run(tmp_path / "clean", "mf", noisy=False)], tmp_path / "x.png")
    with pytest.raises(MMDenoiseError, match="missing: no such run folder"):
        score_distributions([tmp_path / "missing"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
