"""Optional TensorBoard logging: the metrics.jsonl rows as scalars, and a clear error without the package."""
import sys

import pytest

from mmdenoise.api import train
from mmdenoise.errors import ConfigError
from mmdenoise.training import record

FAST = ["train.progress=false", "train.threads=1", "train.epochs=2"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from mmdenoise.data.synth import generate
    return generate("tiny", seed=0, out=tmp_path_factory.mktemp("data") / "tiny", image_dim=32, text_dim=16)


def test_tensorboard_scalars_equal_the_metrics_rows(tmp_path, tiny):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run = train(str(tiny), "lightgcn", "tce", overrides=FAST, out=tmp_path / "run", tensorboard=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    history = record.read_metrics(run.path)
    recall = events.Scalars("valid/recall@20")
    assert [s.step for s in recall] == [r["epoch"] for r in history] == [0, 1]
    assert [s.value for s in recall] == pytest.approx([r["valid"]["recall@20"] for r in history], rel=1e-6)
    assert [s.value for s in events.Scalars("loss")] == pytest.approx([r["loss"] for r in history], rel=1e-6)
    assert "detection/auc" not in events.Tags()["scalars"]  # clean data: no detection metrics
    assert "epoch" not in events.Tags()["scalars"]


def test_tensorboard_without_the_package_is_a_clear_error(tmp_path, tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"pip install 'mmdenoise\[tensorboard\]'"):
        train(str(tiny), "lightgcn", overrides=FAST, out=tmp_path / "run", tensorboard=True)
    assert not (tmp_path / "run").exists()  # nothing written
