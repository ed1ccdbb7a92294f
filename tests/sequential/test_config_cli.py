"""Sequential configs fail loudly; the CLI trains, evaluates, generates and runs the sensitivity and
split studies."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from mmdenoise.cli import app
from mmdenoise.errors import ConfigError
from mmdenoise.sequential import resolve_sequential_config
from mmdenoise.sequential import study as study_module
from mmdenoise.training import record

FAST = ["--set", "train.threads=1", "--set", "train.epochs=1", "--set", "train.progress=false",
        "--set", "train.batch_size=256"]


def test_overrides_land_in_their_sections_and_errors_list_valid_names():
    config = resolve_sequential_config({"model": "demure"}, ["gamma_i=0.5", "max_len=10", "train.lr=0.01",
                                                              "model.n_views=2", "seed=3"])
    assert config.model_params["gamma_i"] == 0.5 and config.model_params["n_views"] == 2
    assert config.sequence.max_len == 10 and config.train.lr == 0.01 and config.seed == 3
    assert config.train.epochs == 200 and config.model_params["interest"] == "grad_input"   # defaults
    with pytest.raises(ConfigError, match="valid sequential models: .*comirec-sa.*demure"):
        resolve_sequential_config({"model": "sasrec"})
    with pytest.raises(ConfigError, match=r"'gama_i' is not a known key \(did you mean 'model_params.gamma_i'\?\); "):
        resolve_sequential_config({"model": "demure"}, ["gama_i=0.5"])
    with pytest.raises(ConfigError, match=r"model_params \(demure\).gamma_m: must be in \[0, 1\]"):
        resolve_sequential_config({"model": "demure"}, ["gamma_m=1.5"])
    with pytest.raises(ConfigError, match=r"model_params \(demure\).n_views: must be ≥ 1, got 0"):
        resolve_sequential_config({"model": "demure", "model_params": {"n_views": 0}})
    with pytest.raises(ConfigError, match="expected an integer"):
        resolve_sequential_config({"model": "base"}, ["dim=wide"])
    with pytest.raises(ConfigError, match="sequence.user_ratios"):
        resolve_sequential_config({}, ["user_ratios=[0.5,0.1,0.1]"])
    with pytest.raises(ConfigError, match="train.feature_precision=bfloat16: the sequential models keep"):
        resolve_sequential_config({"model": "demure"}, ["train.feature_precision=bfloat16"])


def test_cli_synth_train_evaluate(tmp_path):
    runner = CliRunner()
    data = tmp_path / "seq"
    out = runner.invoke(app, ["data", "synth", "--preset", "seq-tiny", "--out", str(data)])
    assert out.exit_code == 0, out.output
    run = tmp_path / "run"
    out = runner.invoke(app, ["train", "-m", "base", "-d", str(data), "--out", str(run), "--set", "dim=16", *FAST])
    assert out.exit_code == 0, out.output
    assert "recall@20" in out.output and "localisation (grad_input)" in out.output
    assert record.read_result(run)["task"] == "sequential"
    out = runner.invoke(app, ["evaluate", str(run)])
    assert out.exit_code == 0 and "recall@50" in out.output, out.output
    bad = runner.invoke(app, ["train", "-m", "base", "--denoiser", "tce", "-d", str(data)])
    assert bad.exit_code != 0 and "takes no denoiser" in str(bad.exception)
    bad = runner.invoke(app, ["train", "-m", "sasrec", "-d", str(data)])
    assert bad.exit_code != 0 and "general models: pop, mf" in str(bad.exception)
    assert "sequential models: seq-pop," in str(bad.exception)


def test_sensitivity_study_table(tmp_path, seq_tiny_folder, monkeypatch):
    study = tmp_path / "study"
    monkeypatch.setattr(study_module, "J_POINTS", (1, 2))
    args = ["study", "sensitivity", "-d", str(seq_tiny_folder), "--grid", "j", "--out", str(study),
            "--set", "dim=16", *FAST]
    bad = CliRunner().invoke(app, [*args, "--finished-only"])                # nothing trained yet
    assert bad.exit_code != 0 and "base model's runs" in str(bad.exception)
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    table = (study / "sensitivity-j.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| J | valid R@20 | test R@20") and len(lines) == 4      # header, base, J=1, J=2
    assert lines[0].endswith("| best epoch | s/epoch |")
    assert lines[1].startswith("| base |") and "←" in table
    summary = json.loads((study / "sensitivity-j.json").read_text())
    assert [r["label"] for r in summary["rows"]] == ["base", "j1", "j2"]
    assert all(0.0 <= r["p_vs_base"] <= 1.0 for r in summary["rows"][1:])
    j2 = record.read_result(study / "demure-j2-s0")
    assert summary["rows"][2]["best_epoch"] == j2["best_epoch"]
    assert summary["rows"][2]["seconds_per_epoch"] == pytest.approx(j2["seconds_per_epoch"])
    assert (study / "demure-j2-s0" / record.PER_USER_FILE).exists()

    # a grid with a point not yet run: --finished-only tables what exists and trains nothing
    monkeypatch.setattr(study_module, "J_POINTS", (1, 2, 3))
    out = CliRunner().invoke(app, [*args, "--finished-only"])
    assert out.exit_code == 0, out.output
    assert not (study / "demure-j3-s0").exists()
    partial = json.loads((study / "sensitivity-j.json").read_text())
    assert partial["rows"][3]["runs"] is None and "p_vs_base" not in partial["rows"][3]
    assert partial["rows"][:3] == summary["rows"] and partial["best_valid"] == summary["best_valid"]
    assert "| 3 | not run |" in (study / "sensitivity-j.md").read_text()
    assert len(study_module.grid_points("gamma")) == 9
    with pytest.raises(ConfigError, match="grids: gamma"):
        study_module.grid_points("lambda")
    with pytest.raises(ConfigError, match=r"unknown sensitivity grid 'gama' \(did you mean 'gamma'\?\); grids"):
        study_module.grid_points("gama")


def test_split_comparison_pools_the_pairs_of_every_split(tmp_path, seq_tiny_folder):
    out = CliRunner().invoke(app, ["study", "splits", "-d", str(seq_tiny_folder), "-m", "youtubednn,base",
                                   "--splits", "0,1", "--seeds", "2", "--out", str(tmp_path / "cmp"),
                                   "--set", "dim=16", *FAST])
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "cmp" / "splits.json").read_text())
    runs = {(r["model"], r["split"]): r["runs"] for r in summary["per_split"]}
    assert sorted(runs) == [("base", 0), ("base", 1), ("youtubednn", 0), ("youtubednn", 1)]
    assert all(len(group) == 2 for group in runs.values())                # one run per training seed

    def seed_mean(model, split, key):                                       # per-user values, mean of the seeds
        arrays = [record.read_per_user(run) for run in runs[(model, split)]]
        assert (arrays[0]["users"] == arrays[1]["users"]).all()
        return (arrays[0][key] + arrays[1][key]) / 2

    # the two splits hold different test users; each (split, user) is one pair
    users = [record.read_per_user(runs[("base", k)][0])["users"] for k in (0, 1)]
    assert not np.array_equal(users[0], users[1])
    ref = np.concatenate([seed_mean("youtubednn", k, "test_recall@20") for k in (0, 1)])
    other = np.concatenate([seed_mean("base", k, "test_recall@20") for k in (0, 1)])
    pooled = {r["model"]: r for r in summary["pooled"]}
    assert pooled["base"]["n_pairs"] == ref.size == users[0].size + users[1].size
    assert pooled["base"]["recall@20"] == pytest.approx(other.mean())
    assert pooled["base"]["p_recall@20"] == pytest.approx(stats.ttest_rel(other, ref).pvalue)
    assert "p_recall@20" not in pooled["youtubednn"]
    # each distinct user once: its base − youtubednn differences averaged over the splits holding it
    by_user = {}
    for k in (0, 1):
        diff = seed_mean("base", k, "test_recall@20") - seed_mean("youtubednn", k, "test_recall@20")
        for user, d in zip(users[k].tolist(), diff):
            by_user.setdefault(user, []).append(d)
    assert any(len(v) == 2 for v in by_user.values())                     # the splits share test users
    once = np.array([np.mean(v) for v in by_user.values()])
    assert pooled["base"]["n_users"] == len(by_user) < pooled["base"]["n_pairs"]
    assert pooled["base"]["p_users_recall@20"] == pytest.approx(stats.ttest_1samp(once, 0.0).pvalue)
    for row in summary["per_split"]:
        results = [record.read_result(run)["test"]["recall@20"] for run in runs[(row["model"], row["split"])]]
        assert row["recall@20"] == pytest.approx(np.mean(results))
        if row["model"] == "base":
            assert row["delta"] == pytest.approx(seed_mean("base", row["split"], "test_recall@20").mean()
                                                 - seed_mean("youtubednn", row["split"], "test_recall@20").mean())
    table = (tmp_path / "cmp" / "splits.md").read_text()
    assert "| 1 | base |" in table and "| base | " in table and "(p = " in table
    bad = CliRunner().invoke(app, ["seq-compare", "-d", str(seq_tiny_folder), "-m", "base,sasrec",
                                   "--out", str(tmp_path / "bad")])
    assert isinstance(bad.exception, ConfigError) and "sequential models: seq-pop" in str(bad.exception)
    with pytest.raises(ConfigError, match="--splits: give distinct"):
        study_module.split_study(str(seq_tiny_folder), ["base", "demure"], tmp_path / "bad", splits=[0, 0])
