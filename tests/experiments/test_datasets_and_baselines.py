"""The datasets page (``data stats``) and the baseline study on the tiny preset."""
import json

import numpy as np
import pytest

from mmdenoise.experiments.datasets import dataset_stats, stats_table, write_stats_page
from mmdenoise.experiments.study import baseline_study
from mmdenoise.training import record


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from mmdenoise.data.synth import generate
    return generate("tiny", seed=0, out=tmp_path_factory.mktemp("data") / "tiny", image_dim=32, text_dim=16)


def test_stats_of_the_synthetic_preset_show_informative_modalities(tiny, tmp_path):
    stats = dataset_stats(str(tiny))
    assert (stats["users"], stats["items"]) == (300, 200)
    for modality in ("image", "text"):
        m = stats["modalities"][modality]
        assert m["k"] == 10 and m["chance"] == pytest.approx(10 / 199)
        # the generator derives both modalities from the item factors users consume by: far above chance
        assert m["lift"] > 2.0, (modality, m)
    page = write_stats_page([str(tiny)], tmp_path / "datasets.md")
    text = page.read_text()
    assert "| overlap@10 | lift |" in text and f"`mmdenoise data stats {tiny}" in text
    assert json.loads(page.with_suffix(".json").read_text())["datasets"][0]["items"] == 200


def test_stats_table_rows_by_hand():
    stats = [{"source": "d", "users": 2, "items": 5, "interactions": {"total": 4},
              "modalities": {"a": {"dim": 3, "mean_cosine": 0.25, "overlap": 0.5, "lift": 2.0, "k": 10},
                             "b": {"dim": 1, "mean_cosine": 1.0, "overlap": 0.1, "lift": 0.4, "k": 10}}},
             {"source": "ids-only", "users": 1, "items": 1, "interactions": {"total": 1}, "modalities": {}}]
    rows = stats_table(stats).splitlines()[2:]
    assert rows == ["| d | 2 | 5 | 4 | 40.000% | a | 3 | 0.250 | 0.500 | 2.0× |",
                    "| | | | | | b | 1 | 1.000 | 0.100 | 0.4× |",
                    "| ids-only | 1 | 1 | 1 | 100.000% | – | – | – | – | – |"]


def test_baseline_study_table_from_the_run_folders(tiny, tmp_path):
    result = baseline_study(str(tiny), "pop,mf", out=tmp_path / "b", overrides=["train.epochs=3"])
    assert [r["params"] for r in result.records] == [{"model": "pop", "seed": 0}, {"model": "mf", "seed": 0}]
    lines = {line.split(" | ")[0].lstrip("| "): line for line in result.table.splitlines() if line.startswith("| ")}
    for rec in result.records:
        res = record.read_result(rec["path"])
        cells = lines[rec["params"]["model"]].strip("| ").split(" | ")
        assert cells[2].strip("*") == f"{res['test']['recall@20']:.4f}"
        assert cells[3] == f"{res['test']['ndcg@20']:.4f}"
        assert cells[7] == f"{res['eval_seconds']:.2f}"
    assert lines["pop"].split(" | ")[4] == "–"  # pop trains no epoch
    best = max(r["test"]["recall@20"] for r in result.records)
    assert f"**{best:.4f}**" in result.table
    summary = json.loads((tmp_path / "b" / "baselines.json").read_text())
    assert summary["rows"]["mf"]["epochs_run"] == 3 and np.isfinite(summary["rows"]["mf"]["seconds_per_epoch"])
    again = baseline_study(str(tiny), "pop,mf", out=tmp_path / "b", overrides=["train.epochs=3"])
    assert again.table == result.table  # the rerun skips the finished runs


def test_finished_only_tables_what_has_finished_and_trains_nothing(tiny, tmp_path):
    baseline_study(str(tiny), "mf", out=tmp_path / "b", overrides=["train.epochs=2"])
    partial = baseline_study(str(tiny), "mf,lightgcn", out=tmp_path / "b", overrides=["train.epochs=2"],
                             finished_only=True)
    assert [r["params"]["model"] for r in partial.records] == ["mf"]
    assert "| mf |" in partial.table and "| lightgcn |" not in partial.table
    assert partial.table.rstrip().endswith("Not run yet: lightgcn.")
    assert not any(p.name.startswith("model=lightgcn") for p in (tmp_path / "b").iterdir())


def test_baseline_study_refuses_a_sequential_model(tiny, tmp_path):
    from mmdenoise.errors import ConfigError
    with pytest.raises(ConfigError, match="demure is a sequential model; the baseline study runs general models"):
        baseline_study(str(tiny), "mf,demure", out=tmp_path / "b")
    assert not (tmp_path / "b").exists()
