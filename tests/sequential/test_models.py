"""Every sequential model trains on the planted tiny preset and beats popularity; the run folder is
the general task's; Demure's interest scores find the planted points of interest above chance."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdenoise.config import dump_yaml
from mmdenoise.data.seqsynth import read_seq_truth
from mmdenoise.eval import compare
from mmdenoise.sequential import SEQUENTIAL_MODELS, resolve_sequential_config, train_sequential
from mmdenoise.api import Run, evaluate_run
from mmdenoise.sequential.registry import make_task, make_view
from mmdenoise.sequential.interest import interest_scores
from mmdenoise.sequential.localisation import localisation_accuracy
from mmdenoise.sequential.task import SequentialTask
from mmdenoise.training import record
from mmdenoise.training.trainer import Trainer

MODELS = ("seq-pop", "youtubednn", "gru4rec", "base", "comirec-sa", "demure")
# 60 validation and 60 test users; lr 3e-3 (the paper's MovieLens rate) so a few epochs suffice
SETTINGS = ["train.threads=1", "train.progress=false", "train.epochs=8", "train.batch_size=256", "train.patience=100",
            "train.lr=0.003", "sequence.user_ratios=[0.6,0.2,0.2]"]


@pytest.fixture(scope="module")
def runs(seq_tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {m: train_sequential(seq_tiny, m, seed=0, out=root / m,
                                overrides=SETTINGS + ([] if m == "seq-pop" else ["dim=32"])) for m in MODELS}


def test_registry_is_explicit():
    assert set(SEQUENTIAL_MODELS) == set(MODELS)


@pytest.mark.parametrize("model", MODELS[1:])
def test_every_model_beats_popularity(runs, model):
    pop, run = runs["seq-pop"], runs[model]
    assert len(run.history) == 8 and np.isfinite([r["loss"] for r in run.history]).all()
    both = run.valid["recall@20"] + run.test["recall@20"]
    assert both > 1.25 * (pop.valid["recall@20"] + pop.test["recall@20"]), (run.valid, run.test, pop.test)


def test_run_folder_contract_and_paired_test(runs, seq_tiny):
    run = runs["demure"]
    names = {p.name for p in run.path.iterdir()}
    assert {record.CONFIG_FILE, record.METRICS_FILE, record.RESULT_FILE, record.PER_USER_FILE,
            record.CHECKPOINT_FILE} <= names
    result = record.read_result(run.path)
    assert result["task"] == "sequential" and result["model"] == "demure"
    assert result["sequence"]["valid_users"] == 60 and result["sequence"]["test_users"] == 60
    assert {"recall@20", "ndcg@20", "recall@50", "ndcg@50"} <= set(result["test"])
    per_user = record.read_per_user(run.path)
    view = make_view(seq_tiny, run.config)
    assert per_user["users"].tolist() == view.users("test").tolist()
    assert per_user["test_recall@20"].mean() == pytest.approx(run.test["recall@20"])
    assert {"ssm", "ssm_aug", "cont"} <= set(run.history[0])
    comparison = compare(per_user, record.read_per_user(runs["base"].path))
    assert comparison.n_users == 60 and 0.0 <= comparison.p_ttest <= 1.0
    loaded = Run.load(run.path)
    assert loaded.config.model == "demure" and loaded.test == run.test and loaded.denoiser is None
    valid, test = evaluate_run(run.path, seq_tiny)
    assert test.metrics["recall@20"] == pytest.approx(run.test["recall@20"])


def test_demure_finds_the_planted_points_of_interest(runs, seq_tiny):
    run = runs["demure"]
    truth = read_seq_truth(seq_tiny.path)
    view = make_view(seq_tiny, run.config)
    loc = localisation_accuracy(run.backbone, view, truth, "heldout", k=3)
    assert loc["users"] == 120
    assert loc["modality_hit_rate"] > max(loc["modality_chance"], loc["modality_majority_rate"]) + 0.1, loc
    assert loc["item_precision@3"] > loc["item_chance"] + 0.03, loc
    assert run.result["localisation"]["grad_input"]["users"] == 60      # the run reports its test users


def test_fast_interest_path_equals_per_position_autograd(runs, seq_tiny):
    """Eq. 8 by the chain rule through distinct items gives the per-position autograd numbers."""
    base = runs["demure"].backbone.base
    view = make_view(seq_tiny, runs["demure"].config)
    users = view.users("test")[:16]
    history = torch.from_numpy(view.histories(users)[0])
    target_emb = base.encoder(torch.from_numpy(view.items[view.indptr[users] + view.history_len[users]]))
    for kind in ("grad", "grad_input"):
        slow = base.encode_history(history, per_position=True)
        reference = interest_scores(base.target_scores(slow.user, target_emb), slow, history >= 0, kind)
        fast = base.encode_history(history)
        got = interest_scores(base.target_scores(fast.user, target_emb), fast, history >= 0, kind,
                              items=history, encoder=base.encoder)
        for a, b in zip(reference, got):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_resume_matches_an_uninterrupted_run(seq_tiny, tmp_path):
    settings = ["train.threads=1", "train.progress=false", "dim=16", "train.patience=100", "train.batch_size=256"]
    full = train_sequential(seq_tiny, "demure", seed=1, out=tmp_path / "full",
                            overrides=[*settings, "train.epochs=2"])
    # interrupted in epoch 1 (the checkpoint is that of epoch 0), then resumed by the API: the same
    # losses and metrics, so every random draw (batches, negatives, augmentations) is reseeded per epoch
    config = resolve_sequential_config({"model": "demure", "seed": 1}, [*settings, "train.epochs=2"])

    def crash(row):
        if row["epoch"] == 1:
            raise KeyboardInterrupt

    (tmp_path / "cut").mkdir()  # the folder as train_sequential starts it: its config first
    (tmp_path / "cut" / record.CONFIG_FILE).write_text(dump_yaml(config))
    trainer = Trainer(make_task(seq_tiny, config), config.train, seed=1, run_dir=tmp_path / "cut", on_epoch=crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert record.load_checkpoint(tmp_path / "cut")["epoch"] == 0
    resumed = train_sequential(seq_tiny, "demure", seed=1, out=tmp_path / "cut", resume=True,
                               overrides=[*settings, "train.epochs=2"])
    assert resumed.test == full.test and resumed.result["epochs_run"] == 2
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]


def test_demure_loss_is_eq15_and_lambda1_zero_only_logs_the_positive_view_loss(runs, seq_tiny):
    demure = runs["demure"].backbone
    view = make_view(seq_tiny, runs["demure"].config)
    batch = SequentialTask(seq_tiny, view, demure, n_negatives=64).batch(np.arange(32), np.arange(64))
    grads, original = {}, demure.lambda_aug
    try:
        for lambda_aug in (0.0, 1.0):
            demure.lambda_aug = lambda_aug
            torch.manual_seed(0)   # the same views both times
            loss, terms = demure.loss(batch, epoch=1)
            expected = terms["ssm"] + lambda_aug * terms["ssm_aug"] + demure.lambda_cont * terms["cont"]
            assert torch.isclose(loss, expected) and terms["ssm_aug"] > 0
            demure.zero_grad()
            loss.backward()
            grads[lambda_aug] = torch.cat([p.grad.flatten() for p in demure.parameters() if p.grad is not None])
    finally:
        demure.lambda_aug = original   # the fixture is shared
    assert not torch.allclose(grads[0.0], grads[1.0])   # the positive views' softmax moves the weights only at λ₁ > 0


def test_demures_candidate_pool_excludes_exactly_the_items_each_user_has_seen(runs, seq_tiny):
    """Replacements come from pool items the user never interacted with (every item when the pool
    covers them all); a user who has seen the whole pool may take any of it."""
    demure = runs["demure"].backbone
    n_items, keys = demure.n_items, demure.seen_keys
    seen = {}
    for key in keys.tolist():
        seen.setdefault(key // n_items, set()).add(key % n_items)
    users = torch.tensor([*sorted(seen)[:40], next(iter(seen))])        # a repeated user too
    original = demure.pool_size
    try:
        for pool_size in (n_items, 7):
            demure.pool_size = pool_size
            pool, allowed = demure.candidate_pool(users)
            assert pool.numel() == min(pool_size, n_items) and pool.unique().numel() == pool.numel()
            expected = torch.tensor([[item not in seen[u] for item in pool.tolist()] for u in users.tolist()])
            expected |= ~expected.any(1, keepdim=True)
            assert torch.equal(allowed, expected)
        # a user whose history covers the whole pool may take any of it
        demure.pool_size = n_items
        full = torch.tensor(sorted(seen[int(users[0])]))
        demure.register_buffer("seen_keys", torch.sort(torch.cat([keys, users[0] * n_items + torch.arange(
            n_items)])).values.unique(), persistent=False)
        demure.register_buffer("seen_users", demure.seen_keys // n_items, persistent=False)
        _, allowed = demure.candidate_pool(users[:1])
        assert bool(allowed.all()) and full.numel() < n_items
    finally:
        demure.pool_size = original
        demure.register_buffer("seen_keys", keys, persistent=False)
        demure.register_buffer("seen_users", keys // n_items, persistent=False)
