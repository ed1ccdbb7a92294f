"""The trainer: reproducible, resumable after SIGKILL, NaN-guarded, early-stopping, run records."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mmdenoise.api import Run, build, evaluate_run, resolve_config, train
from mmdenoise.data import load_dataset
from mmdenoise.data import write_mmrec
from mmdenoise.errors import ConfigError, RunError, TrainingError
from mmdenoise.models.lightgcn import LightGCN
from mmdenoise.training import record
from mmdenoise.training.general import GeneralTask
from mmdenoise.training.step import adam
from mmdenoise.training.trainer import Trainer

FAST = ["train.progress=false", "train.batch_size=256"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from tests.planted import planted_dataset
    dataset = planted_dataset(n_users=120, n_items=80, seed=0)
    return write_mmrec(dataset, tmp_path_factory.mktemp("data") / "small")


def _train(folder, out, model="lightgcn", extra=()):
    return train(str(folder), model=model, seed=3, out=out, overrides=[*FAST, "train.epochs=6", *extra])


def test_same_seed_same_metrics(small, tmp_path):
    a = _train(small, tmp_path / "a")
    b = _train(small, tmp_path / "b")
    assert a.test == b.test and a.valid == b.valid
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    c = train(str(small), model="lightgcn", seed=4, out=tmp_path / "c", overrides=[*FAST, "train.epochs=6"])
    assert [r["loss"] for r in c.history] != [r["loss"] for r in a.history]


def test_run_folder_contract(small, tmp_path):
    run = _train(small, tmp_path / "run")
    files = {p.name for p in run.path.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "result.json", "per_user.npz", "checkpoint.pt"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    result = record.read_result(run.path)
    for key in ("valid", "test", "best_epoch", "epochs_run", "seconds_per_epoch", "eval_seconds",
                "peak_rss_mb", "dataset", "model", "denoiser", "seed", "versions"):
        assert key in result
    assert result["dataset"]["fingerprint"] and result["epochs_run"] == 6
    assert set(result["test"]) >= {f"{m}@{k}" for m in ("recall", "ndcg", "precision", "map", "hit")
                                   for k in (5, 10, 20, 50)}
    lines = record.read_metrics(run.path)
    assert [r["epoch"] for r in lines] == list(range(6)) and "valid" in lines[0]
    per_user = record.read_per_user(run.path)
    assert per_user["test_recall@20"].shape == per_user["users"].shape
    assert np.isclose(per_user["test_recall@20"].mean(), result["test"]["recall@20"])
    assert per_user["valid_recall@20"].shape == per_user["valid_users"].shape
    loaded = Run.load(run.path)
    assert loaded.test == run.test and loaded.config == run.config
    valid, test = evaluate_run(run.path)
    assert test.metrics == pytest.approx(run.test) and valid.metrics == pytest.approx(run.valid)
    # a checkpoint never loads into other data
    from tests.planted import planted_dataset
    other = planted_dataset(n_users=120, n_items=80, seed=1)
    with pytest.raises(RunError, match="cannot evaluate .*: it was trained on dataset fingerprint .* now has"):
        evaluate_run(run.path, other)


def test_best_validation_checkpoint_is_reported(small, tmp_path):
    run = _train(small, tmp_path / "run", extra=["train.epochs=8"])
    checks = [(r["epoch"], r["valid"]["recall@20"]) for r in run.history]
    best_epoch, best_value = max(checks, key=lambda c: (c[1], -c[0]))
    assert run.result["best_epoch"] == best_epoch
    assert run.valid["recall@20"] == pytest.approx(best_value)


def test_early_stopping_after_patience_checks(small, tmp_path):
    # lr = 0: validation never improves after the first check
    run = _train(small, tmp_path / "run", extra=["train.lr=0", "train.patience=3", "train.epochs=50"])
    assert run.result["epochs_run"] == 4 and run.result["stopped_early"] and run.result["best_epoch"] == 0


def test_no_early_stop_before_min_epochs(small, tmp_path):
    # the same frozen run as above with min_epochs 7: patience runs out after epoch 4, the stop waits for 7
    run = _train(small, tmp_path / "run", extra=["train.lr=0", "train.patience=3", "train.epochs=50",
                                                 "train.min_epochs=7"])
    assert run.result["epochs_run"] == 7 and run.result["stopped_early"] and run.result["best_epoch"] == 0
    # a run that would stop after min_epochs anyway is the same run
    frozen = ["train.lr=0", "train.patience=3", "train.epochs=50"]
    late = _train(small, tmp_path / "late", extra=[*frozen, "train.min_epochs=2"])
    plain = _train(small, tmp_path / "plain", extra=frozen)
    assert late.result["epochs_run"] == plain.result["epochs_run"] == 4
    assert [(r["loss"], r["valid"]) for r in late.history] == [(r["loss"], r["valid"]) for r in plain.history]


def test_eval_every(small, tmp_path):
    run = _train(small, tmp_path / "run", extra=["train.eval_every=2", "train.epochs=5"])
    assert [("valid" in r) for r in run.history] == [False, True, False, True, True]


def test_nan_guard_names_epoch_batch_and_term(small, tmp_path, monkeypatch):
    original = LightGCN.extra_loss
    calls = {"n": 0}

    def poisoned(self, batch, user_emb, item_emb):
        calls["n"] += 1
        value = original(self, batch, user_emb, item_emb)
        return value * float("nan") if calls["n"] == 7 else value

    monkeypatch.setattr(LightGCN, "extra_loss", poisoned)
    with pytest.raises(TrainingError, match=r"loss term\(s\) extra=nan") as info:
        _train(small, tmp_path / "run")
    from mmdenoise.data import load_dataset
    n_batches = -(-len(load_dataset(small).train) // 256)
    epoch, batch = divmod(6, n_batches)
    assert f"epoch {epoch}, batch {batch}:" in str(info.value)
    if epoch > 0:  # the checkpoint of the last good evaluation is kept
        assert record.load_checkpoint(tmp_path / "run")["epoch"] == epoch - 1


def test_popularity_needs_no_training(small, tmp_path):
    run = _train(small, tmp_path / "pop", model="pop")
    assert run.result["epochs_run"] == 0 and 0 < run.test["recall@50"] <= 1


def _cli(*args):
    return [sys.executable, "-m", "mmdenoise.cli", *args]


def test_resume_after_sigkill_equals_uninterrupted(tmp_path):
    from tests.planted import planted_dataset
    folder = write_mmrec(planted_dataset(n_users=1500, n_items=600, seed=1, per_user=30), tmp_path / "mid")
    args = ["train", "-d", str(folder), "-m", "lightgcn", "--seed", "5", "--set", "train.progress=false",
            "--set", "train.epochs=12", "--set", "train.batch_size=512", "--set", "train.patience=100",
            "--set", "train.threads=1"]  # a busy machine makes a 2-thread pool crawl; results do not depend on it
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # the uninterrupted run trains beside the one to be killed (they share nothing but the dataset folder)
    full = subprocess.Popen(_cli(*args, "--out", str(tmp_path / "full")), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    killed_dir = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", str(killed_dir)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if len(record.read_metrics(killed_dir)) >= 4 and (killed_dir / "checkpoint.pt").exists():
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed_dir / "result.json").exists()
    full_err = full.communicate(timeout=600)[1]
    assert full.returncode == 0, full_err
    resumed = subprocess.run(_cli(*args, "--out", str(killed_dir), "--resume"), env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr

    a, b = record.read_result(tmp_path / "full"), record.read_result(killed_dir)
    assert a["test"] == b["test"] and a["valid"] == b["valid"] and a["best_epoch"] == b["best_epoch"]
    la, lb = record.read_metrics(tmp_path / "full"), record.read_metrics(killed_dir)
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]


def test_resume_without_checkpoint_is_a_clear_error(small, tmp_path):
    with pytest.raises(RunError, match="cannot resume: .*empty does not exist"):
        train(str(small), model="mf", out=tmp_path / "empty", resume=True, overrides=FAST)
    assert not (tmp_path / "empty").exists()


def test_cli_train_prints_table_and_bad_model_lists_valid(small, tmp_path):
    ok = subprocess.run(_cli("train", "-d", str(small), "-m", "mf", "--set", "train.epochs=2",
                             "--set", "train.progress=false", "--out", str(tmp_path / "r")),
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "recall@20" in ok.stdout and "test" in ok.stdout
    bad = subprocess.run(_cli("train", "-d", str(small), "-m", "nope", "--out", str(tmp_path / "x")),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown model 'nope'" in bad.stderr and "lightgcn" in bad.stderr
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["model"] == "mf" and result["epochs_run"] == 2


def test_device_follows_config(small, tmp_path):
    run = _train(small, tmp_path / "cpu", extra=["train.device=cpu", "train.epochs=1"])
    assert run.result["device"] == "cpu"
    assert all(p.device == torch.device("cpu") for p in run.backbone.parameters())


def test_cut_offs_and_metrics_are_settings_checked_before_training(tmp_path):
    from mmdenoise import train
    from mmdenoise.api import resolve_config
    run = train("synth-tiny", "mf", overrides=["train.epochs=2", "train.ks=[10,100]", "train.metrics=[recall]",
                                               "train.valid_metric=recall@100"], out=tmp_path / "run")
    assert set(run.valid) == set(run.test) == {"recall@10", "recall@100"}
    assert run.valid["recall@100"] >= run.valid["recall@10"]
    for bad, message in ((["train.ks=[10,100]"], r"valid_metric='recall@20' is not evaluated: train.ks is \[10, 100\]"),
                         (["train.metrics=[ndcg]"], r"valid_metric='recall@20' is not evaluated"),
                         (["train.ks=[0,20]"], "distinct cut-offs >= 1"),
                         (["train.metrics=[recall,auc]"], "distinct names of recall, ndcg")):
        with pytest.raises(ConfigError, match=message):
            resolve_config({"dataset": "synth-tiny", "model": "mf"}, bad)
        with pytest.raises(ConfigError, match=message):
            train("synth-tiny", "mf", overrides=bad, out=tmp_path / "refused")
        assert not (tmp_path / "refused").exists()


def test_adam_is_fused_on_cpu_and_steps_as_unfused_adam():
    """step.adam: the fused kernel on CPU floats, the same update as torch's unfused Adam up to rounding
    (one unit in the last place), weight decay included; the trainer's optimiser is that Adam."""
    torch.manual_seed(0)
    start = [torch.randn(50, 8), torch.randn(7, 8)]
    grads = [[torch.randn_like(x) for x in start] for _ in range(20)]
    finals = []
    for make in (lambda ps: adam(ps, lr=1e-2, weight_decay=1e-3),
                 lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=1e-3)):
        params = [torch.nn.Parameter(x.clone()) for x in start]
        optimizer = make(params)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = g.clone()
            optimizer.step()
        finals.append(params)
    assert adam([torch.nn.Parameter(torch.zeros(2))], lr=1.0).param_groups[0]["fused"] is True
    config = resolve_config({"dataset": "synth-tiny", "model": "mf", "seed": 0}, FAST)
    data = load_dataset(config.dataset)
    trainer = Trainer(GeneralTask(data, build(data, config)[1]), config.train)
    assert trainer.make_optimizer().param_groups[0]["fused"] is True
    for fused, plain, first in zip(*finals, start):
        assert torch.allclose(fused, plain, rtol=0, atol=1e-6)
        assert (fused - first).abs().max() > 0.1          # 20 steps of lr 1e-2 moved it
