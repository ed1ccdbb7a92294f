"""The classic denoisers T-CE, R-CE, WBPR and BOD: contract and known answers.

Contract (every classic denoiser): built from the registry with its defaults;
total = rec + extra + reg; gradients reach the backbone; a per-interaction
judgement of length len(train) (None for WBPR), neutral where not yet seen;
one epoch through the real trainer on the noised ``tiny`` preset writes
detection metrics. Known answers: which samples T-CE drops and its ramp;
R-CE's weights by hand and detached; WBPR's negatives ∝ popularity; BOD
down-weights planted noise, keeps its generator out of the trainer's
optimiser and restores its generator optimiser exactly.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmdenoise.api import evaluate_run, train
from mmdenoise.config import TrainConfig
from mmdenoise.data import read_mmrec
from mmdenoise.data.noise import inject_noise
from mmdenoise.data.synth import generate
from mmdenoise.denoise import DENOISERS, StepState
from mmdenoise.denoise.tce import drop_rate_schedule
from mmdenoise.errors import ConfigError
from mmdenoise.losses import reweighted_bce, truncated_bce
from mmdenoise.models.base import Batch
from mmdenoise.models.mf import MF
from mmdenoise.training.general import GeneralTask
from mmdenoise.training.trainer import Trainer
from tests.conftest import build_dataset
from tests.planted import planted_dataset

CLASSIC = ["tce", "rce", "wbpr", "bod"]
JUDGES = ["tce", "rce", "bod"]


def make_denoiser(name, dataset, backbone=None, seed=0, **params):
    torch.manual_seed(seed)
    backbone = MF(dataset.n_users, dataset.n_items, 8) if backbone is None else backbone
    entry = DENOISERS[name]
    return entry.build(dataset, backbone, entry.config_cls(**params))


def train_batch(dataset, size, seed=0):
    """The first ``size`` training interactions with uniform random negatives."""
    g = torch.Generator().manual_seed(seed)
    index = torch.arange(size)
    return Batch(torch.from_numpy(dataset.train.users[:size]), torch.from_numpy(dataset.train.items[:size]),
                 torch.randint(dataset.n_items, (size,), generator=g), index)


class _n:
    """A dataset stand-in with ``n`` training interactions (all that a classic denoiser's build reads)."""

    def __init__(self, n):
        self.train = range(n)


@pytest.fixture(scope="module")
def small():
    return build_dataset(n_users=30, n_items=40, seed=1, modalities={})


# ------------------------------------------------------------------ contract
@pytest.mark.parametrize("name", CLASSIC)
def test_total_is_rec_plus_extra_plus_reg_and_reaches_the_backbone(name, small):
    den = make_denoiser(name, small)
    batch = train_batch(small, 20)
    total, terms = den.loss(batch, StepState(0, 40000))
    assert {"rec", "extra", "reg"} <= set(terms) and all(t.ndim == 0 for t in terms.values())
    assert torch.isclose(total, terms["rec"] + terms["extra"] + terms["reg"])
    assert float(terms["reg"].detach()) > 0  # MF's batch L2 is kept
    total.backward()
    for p in den.backbone.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("name", CLASSIC)
def test_judgement_has_one_entry_per_training_interaction_and_is_neutral_where_unseen(name, small):
    den = make_denoiser(name, small)
    if name not in JUDGES:
        assert den.interaction_scores() is None
        return
    before = den.interaction_scores()
    assert before.shape == (len(small.train),) and before.dtype == np.float32
    assert np.unique(before).size == 1
    den.loss(train_batch(small, 20), StepState(0, 0))
    scores = den.interaction_scores()
    assert scores.shape == (len(small.train),) and np.isfinite(scores).all()
    assert np.unique(scores[:20]).size > 1  # seen: a judgement per interaction
    assert np.allclose(scores[20:], scores[:20].mean())  # unseen: the mean of the seen ones


@pytest.mark.parametrize("name, bad", [("tce", {"drop_rate": 1.5}), ("tce", {"num_gradual": -1}),
                                       ("rce", {"beta": -0.1}), ("wbpr", {"alpha": -1.0}),
                                       ("bod", {"reference": "holdout"}), ("bod", {"outer_every": 0})])
def test_bad_settings_are_config_errors(name, bad, small):
    from mmdenoise.api import resolve_config
    with pytest.raises(ConfigError, match=rf"denoiser_params \({name}\)\.{next(iter(bad))}: must be"):
        resolve_config({"denoiser": name, "denoiser_params": bad})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The ``tiny`` synthetic preset, clean and with 20% added interactions (ground truth attached)."""
    clean = read_mmrec(generate("tiny", seed=0, out=tmp_path_factory.mktemp("synth") / "tiny"))
    return {"clean": clean, "noised": inject_noise(clean, add=0.2, seed=0)}


@pytest.mark.parametrize("model, name, variant", [("mf", n, v) for n in CLASSIC for v in ("clean", "noised")]
                         + [("lightgcn", "bod", "noised")])
def test_one_epoch_through_the_trainer_on_tiny(model, name, variant, tiny, tmp_path):
    dataset = tiny[variant]
    run = train(dataset, model=model, denoiser=name, out=tmp_path / name,
                overrides=["train.epochs=1", "train.progress=false"])
    assert 0.0 <= run.test["recall@20"] <= 1.0 and np.isfinite(run.history[0]["loss"])
    _, test = evaluate_run(run.path, dataset)  # the checkpoint loads (weights_only) into a fresh build
    assert test.metrics == run.test
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    if name in JUDGES:
        assert len(run.denoiser.interaction_scores()) == len(dataset.train)
    if name in JUDGES and variant == "noised":
        assert 0.0 <= rows[-1]["detection"]["auc"] <= 1.0
    else:
        assert "detection" not in rows[-1]


# ------------------------------------------------------------------- T-CE
POS = [3.0, -2.0, 0.5, -4.0, 1.0]  # positive losses softplus(−s): the largest at b = 3, then b = 1
NEG = [-1.0, 5.0, 0.0, -3.0, 8.0]  # negatives with huge losses (b = 1, 4): never dropped


def test_drop_rate_ramps_linearly_then_stays():
    assert drop_rate_schedule(0, 0.2, 30000) == 0.0
    assert drop_rate_schedule(15000, 0.2, 30000) == pytest.approx(0.1)
    assert drop_rate_schedule(30000, 0.2, 30000) == pytest.approx(0.2)
    assert drop_rate_schedule(10**6, 0.2, 30000) == pytest.approx(0.2)
    assert DENOISERS["tce"].config_cls() == DENOISERS["tce"].config_cls(drop_rate=0.2, num_gradual=30000)


@pytest.mark.parametrize("step, dropped", [(0, []), (15000, [3]), (30000, [1, 3]), (99999, [1, 3])])
def test_tce_drops_exactly_the_largest_loss_positives(step, dropped, scored):
    backbone, batch = scored(POS, NEG)
    den = DENOISERS["tce"].build(_n(5), backbone, DENOISERS["tce"].config_cls())
    total, terms = den.loss(batch, StepState(0, step))
    pos_loss = F.softplus(-torch.tensor(POS))
    neg_loss = F.softplus(torch.tensor(NEG))
    kept = [b for b in range(5) if b not in dropped]
    expected = (pos_loss[kept].sum() + neg_loss.sum()) / (10 - len(dropped))
    assert torch.isclose(terms["rec"], expected) and torch.isclose(total, expected)
    assert terms["dropped"] == len(dropped) and terms["kept"] == 10 - len(dropped)
    total.backward()
    grad = backbone.item_scores.grad.reshape(-1)
    assert (grad[dropped] == 0).all() and (grad[kept] != 0).all() and (grad[5:] != 0).all()
    assert np.allclose(den.interaction_scores(), -pos_loss.numpy())


def test_truncated_bce_never_drops_more_than_the_positives():
    _, _, dropped = truncated_bce(torch.tensor(POS), torch.tensor(NEG), 1.0)
    assert dropped.all()
    loss, _, dropped = truncated_bce(torch.tensor(POS), torch.tensor(NEG), 0.0)
    assert not dropped.any()
    assert torch.isclose(loss, torch.cat([F.softplus(-torch.tensor(POS)), F.softplus(torch.tensor(NEG))]).mean())


# ------------------------------------------------------------------- R-CE
def test_rce_weights_are_the_detached_predictions_to_the_beta(scored):
    beta = 0.2
    backbone, batch = scored(POS, NEG, index=[4, 3, 2, 1, 0])
    den = DENOISERS["rce"].build(_n(5), backbone, DENOISERS["rce"].config_cls())
    total, terms = den.loss(batch, StepState(0, 0))
    s_pos, s_neg = torch.tensor(POS), torch.tensor(NEG)
    w_pos, w_neg = torch.sigmoid(s_pos) ** beta, (1 - torch.sigmoid(s_neg)) ** beta
    expected = torch.cat([w_pos * F.softplus(-s_pos), w_neg * F.softplus(s_neg)]).mean()
    assert torch.isclose(terms["rec"], expected)
    assert torch.isclose(terms["weight_pos"], w_pos.mean()) and torch.isclose(terms["weight_neg"], w_neg.mean())
    assert np.allclose(den.interaction_scores(), w_pos.numpy()[::-1], atol=1e-6)  # stored by batch.index
    total.backward()
    # weights are constants: d/ds w·softplus(−s) = −w σ(−s); d/ds w·softplus(s) = w σ(s)
    expected_grad = torch.cat([-w_pos * torch.sigmoid(-s_pos), w_neg * torch.sigmoid(s_neg)]) / 10
    assert torch.allclose(backbone.item_scores.grad.reshape(-1), expected_grad, atol=1e-6)
    _, pos_weight, neg_weight = reweighted_bce(s_pos.requires_grad_(), s_neg, beta)
    assert not pos_weight.requires_grad and not neg_weight.requires_grad


# ------------------------------------------------------------------- WBPR
def test_wbpr_draws_negatives_in_proportion_to_popularity():
    ds = planted_dataset(n_users=60, n_items=30, per_user=5, seed=2, modalities={})
    den = make_denoiser("wbpr", ds)
    sampler = GeneralTask(ds, den).sampler
    assert sampler.popularity and sampler.alpha == 1.0
    user = 0
    draws = sampler.sample(np.full(200_000, user), np.random.default_rng(0))
    popularity = ds.item_popularity.astype(float)
    popularity[ds.train.items[ds.train.users == user]] = 0  # the user's own items are never negatives
    expected = popularity / popularity.sum()
    observed = np.bincount(draws, minlength=ds.n_items) / draws.size
    assert np.abs(observed - expected).max() < 0.01
    assert np.corrcoef(observed, expected)[0, 1] > 0.999


# -------------------------------------------------------------------- BOD
@pytest.fixture(scope="module")
def planted_noise():
    return inject_noise(planted_dataset(n_users=200, n_items=100, per_user=15, seed=0, modalities={}),
                        add=0.2, seed=0)


def test_bod_down_weights_planted_noise(planted_noise):
    # a faster generator than the paper's 1e-3 so that 90 steps suffice
    den = make_denoiser("bod", planted_noise, backbone=MF(planted_noise.n_users, planted_noise.n_items, 32),
                        generator_lr=3e-3)
    trainer = Trainer(GeneralTask(planted_noise, den), TrainConfig(epochs=10, batch_size=256, lr=0.01, eval_every=100,
                                                      progress=False, threads=1), seed=0)
    fit = trainer.fit()
    weights = den.interaction_scores()
    noisy = planted_noise.noise.noisy_interactions
    assert weights.min() > 0 and weights.max() < 1
    assert weights[noisy].mean() < weights[~noisy].mean() - 0.05, (weights[noisy].mean(), weights[~noisy].mean())
    assert fit.history[-1]["detection"]["auc"] > 0.6


def test_bod_generator_is_trained_by_its_own_optimizer_only(small):
    den = make_denoiser("bod", small)
    before = [p.detach().clone() for p in den.generator.parameters()]
    total, terms = den.loss(train_batch(small, 20), StepState(0, 0))
    assert "match" in terms and 0 <= float(terms["match"]) <= 2
    assert any(not torch.equal(a, p) for a, p in zip(before, den.generator.parameters()))  # outer step ran
    total.backward()
    assert all(p.grad is None for p in den.generator.parameters())
    generator = {id(p) for p in den.generator.parameters()}
    trained = {id(p) for p in den.trainable_parameters()}
    assert not generator & trained and trained == {id(p) for p in den.backbone.parameters()}
    assert all(p.grad is not None for p in den.backbone.parameters())


def test_bod_checkpoint_restores_the_generator_optimizer_exactly(small):
    den = make_denoiser("bod", small, seed=0)
    for step in range(3):
        den.loss(train_batch(small, 20, seed=step), StepState(0, step))
    state = den.state_dict()
    assert any(key.endswith("_extra_state") for key in state)
    restored = make_denoiser("bod", small, seed=1)
    restored.load_state_dict(state)
    for d in (den, restored):
        d.loss(train_batch(small, 20, seed=9), StepState(0, 3))
    for a, b in zip(den.generator.parameters(), restored.generator.parameters()):
        assert torch.equal(a, b)
