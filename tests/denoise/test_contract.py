"""The Denoiser contract (docs/design.md, Contracts), passed by every registered denoiser on every kind of backbone.

Parametrised over ``sorted(DENOISERS)`` (the registry, no hand list) × backbones
spanning the contract's shapes: MF (ID-only, BPR), LightGCN (graph), VBPR
(content), FREEDOM (item graphs + extra loss, per-epoch pruning), BM3
(negative-free rec_loss + extra loss). Per pair, on the ``tiny`` preset with
image and text features:

- the loss is a scalar and the sum of its logged parts (names in
  ``LOSS_PARTS``); every other logged value is a detached statistic;
  the backbone's ``extra`` and ``reg`` are always among the parts;
- its gradient reaches the backbone (non-zero somewhere, finite everywhere);
- after one epoch a judgement is None or float [len(train)], finite;
- ``state_dict`` into a fresh build resumes to the same loss on the same batch;
- one epoch through the public ``train`` runs with a finite loss.

A pair that cannot combine is skipped by the registry's ``needs_features``
capability (a model's or a denoiser's: "the dataset needs item features"),
which ``api.build`` checks once for both.
Detection: on 20% planted added interactions, every judging denoiser's ROC-AUC
beats chance on MF and LightGCN after a short run. A new denoiser is one
class + one ``DENOISERS`` line: ``test_a_toy_denoiser_passes_the_same_checks``
registers one and runs the same check functions on it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mmdenoise.api import build, resolve_config, train
from mmdenoise.config import TrainConfig
from mmdenoise.data import read_mmrec
from mmdenoise.data.noise import inject_noise
from mmdenoise.data.synth import generate
from mmdenoise.denoise import DENOISERS, Denoiser, StepState
from mmdenoise.denoise.base import InteractionRecord
from mmdenoise.errors import ConfigError
from mmdenoise.eval.detection import detection_metrics
from mmdenoise.losses import bpr_loss
from mmdenoise.models import MODELS
from mmdenoise.registry import Entry
from mmdenoise.training.general import GeneralTask
from mmdenoise.training.trainer import Trainer
from tests.conftest import build_dataset
from tests.models.conftest import random_batch

BACKBONES = ("mf", "lightgcn", "vbpr", "freedom", "bm3")
#: the names a denoiser logs its loss's summands under; anything else it logs is a detached statistic
LOSS_PARTS = ("rec", "dbpr", "kd", "au", "ai", "extra", "reg")
#: short-run settings, applied to every denoiser whose config has the field (GUIDER judges after one epoch)
FAST = {"warmup_epochs": 1, "teacher_batch_size": 512}
TRAIN = TrainConfig(batch_size=512, lr=0.01, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The ``tiny`` preset (300 users, 200 items, ~4k training interactions), image 32-d and text 16-d."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    return read_mmrec(generate("tiny", seed=0, out=out, image_dim=32, text_dim=16))


# ------------------------------------------------------------------ helpers
def incompatible(model: str, denoiser: str, dataset) -> str | None:
    """Why ``model`` + ``denoiser`` cannot run on ``dataset``, from the registries' capabilities (None: they can)."""
    if dataset.features:
        return None
    needs = [f"{kind} {name}" for kind, name, entry in (("model", model, MODELS[model]),
                                                          ("denoiser", denoiser, DENOISERS[denoiser]))
             if entry.needs_features]
    return f"{' and '.join(needs)} need item features; {dataset.name} has none" if needs else None


def params(registry, name: str, settings: dict) -> dict:
    """The entries of ``settings`` that are fields of ``registry[name]``'s config class."""
    fields = {f.name for f in dataclasses.fields(registry[name].config_cls)}
    return {k: v for k, v in settings.items() if k in fields}


def build_pair(dataset, model: str, denoiser: str, seed: int = 0, **settings):
    """(backbone, denoiser) through ``api.build`` with FAST (+ ``settings``) where the config has the field;
    skips the test when the registry says the pair cannot run on ``dataset``."""
    reason = incompatible(model, denoiser, dataset)
    if reason:
        pytest.skip(reason)
    config = resolve_config({"model": model, "denoiser": denoiser, "seed": seed,
                             "denoiser_params": params(DENOISERS, denoiser, {**FAST, **settings})})
    return build(dataset, config)


def run_epochs(dataset, den: Denoiser, epochs: int = 1, config: TrainConfig = TRAIN) -> Trainer:
    """``epochs`` training epochs through the Trainer (no evaluation)."""
    trainer = Trainer(GeneralTask(dataset, den), config)
    optimizer = trainer.make_optimizer()
    for epoch in range(epochs):
        trainer.train_epoch(epoch, optimizer)
    return trainer


def batch_of(dataset, size: int = 128, seed: int = 0):
    return random_batch(dataset, size, torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------- checks
def check_loss_parts(dataset, backbone, den: Denoiser) -> None:
    """total = Σ logged parts (LOSS_PARTS), scalar and finite; the rest detached; the gradient reaches the
    backbone (non-zero on some parameter, finite on all)."""
    den.train()
    torch.manual_seed(0)
    den.epoch_start(0)
    total, logged = den.loss(batch_of(dataset), StepState(0, 0))
    assert total.ndim == 0 and torch.isfinite(total)
    assert all(v.ndim == 0 and torch.isfinite(v) for v in logged.values()), logged
    assert {"extra", "reg"} <= set(logged), "the backbone's extra loss and regularisation are always added"
    assert logged.keys() & {"rec", "dbpr"}, "a recommendation term"
    parts = [v for k, v in logged.items() if k in LOSS_PARTS]
    assert torch.allclose(total, sum(parts), rtol=1e-6, atol=1e-7), (float(total), logged)
    attached = [k for k, v in logged.items() if k not in LOSS_PARTS and v.requires_grad]
    assert not attached, f"statistics must be detached (or named as a loss part): {attached}"
    total.backward()
    grads = [p.grad for p in backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads), "no gradient reaches the backbone"


def check_judgement(dataset, den: Denoiser) -> np.ndarray | None:
    """After one epoch: None, or float [len(train)] and finite."""
    run_epochs(dataset, den)
    scores = den.interaction_scores()
    if scores is not None:
        assert isinstance(scores, np.ndarray) and scores.shape == (len(dataset.train),)
        assert np.issubdtype(scores.dtype, np.floating) and np.isfinite(scores).all()
    return scores


def check_round_trip(dataset, model: str, denoiser: str) -> None:
    """A trained denoiser's state_dict, loaded into a build from another seed, resumes to the same epoch
    start and the same loss and logged values on the same batch."""
    _, trained = build_pair(dataset, model, denoiser, seed=0)
    run_epochs(dataset, trained)
    _, fresh = build_pair(dataset, model, denoiser, seed=1)
    fresh.load_state_dict(trained.state_dict())  # live tensors: a loaded copy must not alias them
    batch = batch_of(dataset, seed=1)
    results = []
    for den in (trained, fresh):  # as a resumed trainer does: epoch_start of the next epoch, then batches
        den.train()
        torch.manual_seed(11)
        den.epoch_start(1)
        torch.manual_seed(12)
        loss, logged = den.loss(batch, StepState(1, 100))
        results.append({"loss": loss.detach(), **{k: v.detach() for k, v in logged.items()}})
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert torch.allclose(results[0][key], results[1][key], rtol=1e-5, atol=1e-7), key


def check_trainer_epoch(dataset, model: str, denoiser: str, out) -> None:
    """One epoch through ``mmdenoise.train`` (resolve, build, Trainer.fit, run record) with a finite loss."""
    reason = incompatible(model, denoiser, dataset)
    if reason:
        pytest.skip(reason)
    run = train(dataset, model=model, denoiser=denoiser, out=out,
                config={"denoiser_params": params(DENOISERS, denoiser, FAST),
                        "train": {"epochs": 1, "batch_size": 512, "progress": False}})
    assert len(run.history) == 1 and np.isfinite(run.history[0]["loss"])
    assert 0.0 <= run.test["recall@20"] <= 1.0


# ------------------------------------------------------------------ contract
PAIRS = [(m, d) for d in sorted(DENOISERS) for m in BACKBONES]


@pytest.mark.parametrize("model, denoiser", PAIRS)
def test_loss_is_the_sum_of_its_parts_and_reaches_the_backbone(model, denoiser, tiny):
    backbone, den = build_pair(tiny, model, denoiser)
    check_loss_parts(tiny, backbone, den)


@pytest.mark.parametrize("model, denoiser", PAIRS)
def test_judgement_has_one_entry_per_training_interaction(model, denoiser, tiny):
    _, den = build_pair(tiny, model, denoiser)
    check_judgement(tiny, den)


@pytest.mark.parametrize("model, denoiser", PAIRS)
def test_state_dict_round_trip_resumes_the_same_loss(model, denoiser, tiny):
    check_round_trip(tiny, model, denoiser)


@pytest.mark.parametrize("model, denoiser", PAIRS)
def test_one_epoch_through_the_trainer(model, denoiser, tiny, tmp_path):
    check_trainer_epoch(tiny, model, denoiser, tmp_path / "run")


def test_pairs_are_skipped_by_the_features_capability(tiny):
    """A featureless dataset: every pair the registries flag is refused by its build (ConfigError), so
    ``incompatible`` skips exactly the pairs that cannot run; with features nothing is skipped."""
    bare = build_dataset(n_users=30, n_items=40, seed=1, modalities={})
    for denoiser in sorted(DENOISERS):
        assert incompatible("mf", denoiser, tiny) is None
        config = resolve_config({"model": "mf", "denoiser": denoiser,
                                 "denoiser_params": params(DENOISERS, denoiser, FAST)})
        if incompatible("mf", denoiser, bare):
            with pytest.raises(ConfigError, match="needs item features"):
                build(bare, config)
        else:
            build(bare, config)


# ---------------------------------------------------------------- detection
@pytest.fixture(scope="module")
def noised(tiny):
    """``tiny`` with 20% added random interactions (ground truth in ``.noise``)."""
    return inject_noise(tiny, add=0.2, seed=0)


#: a short run: 6 epochs of 256 at lr 0.01; GUIDER's teacher at the same pace, judging from epoch 2
DETECT_TRAIN = TrainConfig(batch_size=256, lr=0.01, progress=False)
DETECT = {"warmup_epochs": 2, "teacher_lr": 0.01, "teacher_batch_size": 256}


def detection_auc(dataset, model: str, denoiser: str, **settings) -> float | None:
    """ROC-AUC of ``denoiser``'s judgement against the planted noise after the short run (None: no judgement)."""
    _, den = build_pair(dataset, model, denoiser, **{**DETECT, **settings})
    run_epochs(dataset, den, epochs=6, config=DETECT_TRAIN)
    scores = den.interaction_scores()
    return None if scores is None else detection_metrics(scores, dataset.noise.noisy_interactions)["auc"]


@pytest.mark.parametrize("model, denoiser", [(m, d) for d in sorted(DENOISERS) for m in ("mf", "lightgcn")])
def test_judges_find_planted_noise_better_than_chance(model, denoiser, noised):
    auc = detection_auc(noised, model, denoiser)
    if auc is None:
        pytest.skip(f"{denoiser} makes no per-interaction judgement")
    assert auc > 0.5, f"{denoiser} on {model}: detection AUC {auc:.3f}"


def test_the_detection_check_fails_a_judge_known_to_be_wrong(noised):
    """BOD's ``alignment`` reference up-weights the noise (bod.py); the check above would fail it."""
    assert detection_auc(noised, "lightgcn", "bod", reference="alignment") < 0.5


# --------------------------------------------------------------- extension
@dataclass
class ToyConfig:
    """No settings."""


class ToyBPR(Denoiser):
    """BPR with constant weights; judges each positive by its detached score σ(s_ui) when last seen."""

    def __init__(self, backbone, n_interactions: int):
        super().__init__(backbone)
        self.judgement = InteractionRecord(n_interactions)

    def loss(self, batch, state):
        user_emb, item_emb = self.backbone()
        pos, neg = self.backbone.batch_scores(batch, user_emb, item_emb)
        self.judgement.update(batch.index, torch.sigmoid(pos))
        terms = self.loss_terms(bpr_loss(pos, neg), batch, user_emb, item_emb)
        return sum(terms.values()), terms

    def interaction_scores(self):
        return self.judgement.scores()


@pytest.mark.parametrize("model", BACKBONES)
def test_a_toy_denoiser_passes_the_same_checks(model, tiny, tmp_path, monkeypatch):
    """One class above + one registry line: the contract checks (and ``train`` by name) run on it unchanged."""
    monkeypatch.setitem(DENOISERS, "toy", Entry(ToyConfig, lambda ds, bb, cfg: ToyBPR(bb, len(ds.train))))
    check_loss_parts(tiny, *build_pair(tiny, model, "toy"))
    assert check_judgement(tiny, build_pair(tiny, model, "toy")[1]) is not None
    check_round_trip(tiny, model, "toy")
    check_trainer_epoch(tiny, model, "toy", tmp_path / "run")
