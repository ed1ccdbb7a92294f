"""The sequential studies run on the one trial runner: a process pool, skipped finished runs, clash
checks, and run folders written before they had a trial.json."""
from __future__ import annotations

import json

import pytest

from mmdenoise.errors import ConfigError
from mmdenoise.sequential import study as study_module
from mmdenoise.sequential.api import train_sequential
from mmdenoise.training import record

FAST = ["dim=16", "train.epochs=1", "train.batch_size=256"]


def test_sensitivity_runs_in_a_pool_and_a_rerun_trains_nothing(tmp_path, seq_tiny_folder, monkeypatch):
    monkeypatch.setattr(study_module, "J_POINTS", (1,))
    seen = []
    path = study_module.sensitivity_study(str(seq_tiny_folder), "j", tmp_path, overrides=FAST, workers=2,
                                          on_result=seen.append)
    assert sorted((r["name"], r["status"]) for r in seen) == [("base-s0", "trained"), ("demure-j1-s0", "trained")]
    trial = json.loads((tmp_path / "demure-j1-s0" / "trial.json").read_text())
    assert trial["params"] == {"point": "j1", "seed": 0}
    assert ["n_views", 1] in trial["overrides"] and ["dim", 16] in trial["overrides"]
    table = path.read_text()
    stamps = {p.parent.name: p.stat().st_mtime_ns for p in tmp_path.glob(f"*/{record.RESULT_FILE}")}

    seen.clear()
    again = study_module.sensitivity_study(str(seq_tiny_folder), "j", tmp_path, overrides=FAST, on_result=seen.append)
    assert {r["status"] for r in seen} == {"skipped"} and again.read_text() == table
    assert {p.parent.name: p.stat().st_mtime_ns for p in tmp_path.glob(f"*/{record.RESULT_FILE}")} == stamps


def test_runs_written_before_trial_json_are_reused_and_others_refused(tmp_path, seq_tiny_folder, monkeypatch):
    """A split-study folder as the studies wrote it before they used the runner (train_sequential, no
    trial.json) is that run: skipped. One trained with other settings is a clash found before anything trains."""
    for k in (0, 1):
        train_sequential(str(seq_tiny_folder), "youtubednn", seed=0, out=tmp_path / f"youtubednn-split{k}-s0",
                         overrides=[*FAST, f"sequence.split_seed={k}"], progress=False)
    stamps = {p.parent.name: p.stat().st_mtime_ns for p in tmp_path.glob(f"*/{record.RESULT_FILE}")}
    seen = []
    study_module.split_study(str(seq_tiny_folder), ["youtubednn", "base"], tmp_path, splits="0,1", overrides=FAST,
                             on_result=seen.append)
    status = {r["name"]: r["status"] for r in seen}
    assert status == {"youtubednn-split0-s0": "skipped", "youtubednn-split1-s0": "skipped",
                      "base-split0-s0": "trained", "base-split1-s0": "trained"}
    assert {n: t for n, t in stamps.items()} == {p.parent.name: p.stat().st_mtime_ns
                                                 for p in tmp_path.glob(f"youtubednn-*/{record.RESULT_FILE}")}
    assert not (tmp_path / "youtubednn-split0-s0" / "trial.json").exists()   # a finished folder is left as it is

    other = tmp_path / "other"
    train_sequential(str(seq_tiny_folder), "youtubednn", seed=0, out=other / "youtubednn-split0-s0",
                     overrides=["dim=8", "train.epochs=1", "train.batch_size=256"], progress=False)
    with pytest.raises(ConfigError, match="holds a run that is not this trial"):
        study_module.split_study(str(seq_tiny_folder), ["youtubednn", "base"], other, splits="0,", overrides=FAST)
    assert not (other / "base-split0-s0").exists()
