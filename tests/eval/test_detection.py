"""Noise-detection metrics against hand-worked values, and the trainer's per-epoch hook."""
import numpy as np
import pytest

from mmdenoise.config import TrainConfig
from mmdenoise.data import Dataset
from mmdenoise.data.dataset import NoiseTruth
from mmdenoise.denoise import NoDenoiser
from mmdenoise.eval import detection_metrics, precision_at_count, roc_auc
from mmdenoise.models.mf import MF
from mmdenoise.training.general import GeneralTask
from mmdenoise.training.trainer import Trainer
from tests.planted import planted_dataset


def test_auc_hand_worked():
    # positives score 0.9 and 0.4; negatives 0.5, 0.1, 0.4 → pairs won: (0.9: 3) + (0.4: 1 win + 1 tie) = 4.5 of 6
    scores = np.array([0.9, 0.5, 0.4, 0.1, 0.4])
    positive = np.array([True, False, True, False, False])
    assert roc_auc(scores, positive) == pytest.approx(4.5 / 6)
    assert roc_auc(-scores, positive) == pytest.approx(1.5 / 6)


def test_auc_is_nan_with_one_class():
    assert np.isnan(roc_auc(np.arange(3.0), np.zeros(3, bool)))
    assert np.isnan(roc_auc(np.arange(3.0), np.ones(3, bool)))


def test_precision_at_noise_count():
    scores = np.array([0.9, 0.8, 0.1, 0.7])
    positive = np.array([True, False, False, True])
    assert precision_at_count(scores, positive) == pytest.approx(0.5)  # top-2 = {0, 1}
    assert precision_at_count(np.array([0.9, 0.1, 0.1, 0.8]), positive) == 1.0


def test_precision_at_noise_count_fills_a_tie_at_the_cut_in_expectation():
    # a binary partition: 3 flagged (score 1) of which 2 positive; 3 positives in all → the cut takes
    # all 3 flagged; a 4th positive among the 3 unflagged ties is not reached
    scores = np.array([1, 1, 1, 0, 0, 0], dtype=float)
    positive = np.array([True, True, False, True, False, False])
    assert precision_at_count(scores, positive) == pytest.approx(2 / 3)
    # 2 slots among 4 tied items holding 1 positive: expected 0.5 hits, plus the 1 sure hit above
    scores = np.array([2, 1, 1, 1, 1, 0], dtype=float)
    positive = np.array([True, False, True, False, False, True])
    assert precision_at_count(scores, positive) == pytest.approx((1 + 2 * 0.25) / 3)
    # the order of the interactions no longer matters
    order = np.array([5, 3, 1, 0, 4, 2])
    assert precision_at_count(scores[order], positive[order]) == pytest.approx((1 + 2 * 0.25) / 3)


def test_detection_uses_negated_clean_scores():
    clean = np.array([0.1, 0.9, 0.8, 0.2])  # interactions 0 and 3 judged noisy
    noisy = np.array([True, False, False, True])
    assert detection_metrics(clean, noisy) == {"auc": 1.0, "precision@noise": 1.0}
    with pytest.raises(ValueError, match="3 entries"):
        detection_metrics(clean[:3], noisy)


class _LossJudge(NoDenoiser):
    """A stand-in denoiser whose judgement is known: training interaction k gets clean score −k."""

    def __init__(self, backbone, n_train: int):
        super().__init__(backbone)
        self.n_train = n_train

    def interaction_scores(self):
        return -np.arange(self.n_train, dtype=np.float32)


def test_trainer_logs_detection_per_epoch_with_planted_noise():
    base = planted_dataset(n_users=30, n_items=20, seed=1)
    n = len(base.train)
    noisy = np.zeros(n, bool)
    noisy[n // 2:] = True  # the judgement -k ranks exactly these as the noisiest half
    data = Dataset(base.name, base.n_users, base.n_items, base.train, base.valid, base.test,
                   features=base.features, noise=NoiseTruth(noisy))
    denoiser = _LossJudge(MF(data.n_users, data.n_items, 8), n)
    fit = Trainer(GeneralTask(data, denoiser), TrainConfig(epochs=2, eval_every=1, progress=False)).fit()
    assert [row["detection"] for row in fit.history] == [{"auc": 1.0, "precision@noise": 1.0}] * 2

    plain = Trainer(GeneralTask(data, NoDenoiser(MF(data.n_users, data.n_items, 8))),
                    TrainConfig(epochs=1, progress=False)).fit()
    assert "detection" not in plain.history[0]  # no judgement, nothing logged


def test_per_user_auc_hand_worked_and_equal_to_each_users_own_auc():
    from mmdenoise.eval.detection import per_user_auc
    # user 0: the hand-worked case above (4.5 of 6 as a noise score: clean = −scores); user 1: one noisy
    # interaction judged the cleanest (AUC 0); user 2: no noisy interaction (left out)
    scores = np.array([0.9, 0.5, 0.4, 0.1, 0.4, 0.3, 0.2, 0.7, 0.6])
    noisy = np.array([True, False, True, False, False, True, False, False, False])
    users = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2])
    got_users, auc = per_user_auc(-scores, noisy, users)
    assert got_users.tolist() == [0, 1] and auc == pytest.approx([4.5 / 6, 1.0])
    got_users, auc = per_user_auc(scores, noisy, users)
    assert auc == pytest.approx([1.5 / 6, 0.0])
    # on random data with ties, the same as roc_auc user by user
    rng = np.random.default_rng(0)
    users = rng.integers(0, 40, 3000)
    noisy = rng.random(3000) < 0.2
    clean = np.round(rng.normal(size=3000) - noisy, 1)
    got_users, auc = per_user_auc(clean, noisy, users)
    expected = [roc_auc(-clean[users == u], noisy[users == u]) for u in got_users]
    assert len(got_users) >= 35 and auc == pytest.approx(expected, abs=1e-12)


def test_a_run_with_a_judgement_on_planted_noise_writes_each_users_detection_auc(tmp_path):
    from mmdenoise.api import train
    from mmdenoise.data.noise import inject_noise
    from mmdenoise.eval.detection import per_user_auc
    from mmdenoise.training import record
    data = inject_noise(planted_dataset(n_users=40, n_items=30, seed=2), add=0.3, seed=0)
    run = train(data, "mf", "tce", overrides=["train.epochs=2", "train.progress=false"], out=tmp_path / "tce")
    per_user = record.read_per_user(run.path)
    scores = record.read_scores(run.path)
    users, auc = per_user_auc(scores["clean_score"], scores["noisy"], data.train.users)
    assert per_user["detection_users"].tolist() == users.tolist() and len(users) > 20
    assert per_user["detection_auc"] == pytest.approx(auc)
    assert "test_recall@20" in per_user  # the metrics stay
    plain = train(data, "mf", overrides=["train.epochs=1", "train.progress=false"], out=tmp_path / "none")
    assert "detection_users" not in record.read_per_user(plain.path)
