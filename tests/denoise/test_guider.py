"""GUIDER's pieces against known answers: AMSC on a hand-built user, brute force, CCA hash agreement."""
import numpy as np
import pytest
import torch

from mmdenoise.denoise.guider.amsc import calibrate, candidate_pairs, loss_split
from mmdenoise.denoise.guider.hashing import fit_cca_hash, modality_confidence
from mmdenoise.graphs import unit_rows

# five items, two modalities (already unit rows)
TEXT = np.array([[1, 0], [1, 0], [0, 1], [0.6, 0.8], [-1, 0]], dtype=np.float32)
IMAGE = np.array([[1, 0], [0, 1], [0, 1], [1, 0], [-1, 0]], dtype=np.float32)
# user 0: items 0..3 with losses 0.1, 0.9, 0.8, 0.2 (mean 0.5: reliable {0, 3}, spurious {1, 2});
# user 1: items 4, 0 with equal losses (both ≤ the mean: reliable); user 2: item 4 alone (reliable)
USERS = np.array([0, 0, 0, 0, 1, 1, 2])
ITEMS = np.array([0, 1, 2, 3, 4, 0, 4])
LOSSES = np.array([0.1, 0.9, 0.8, 0.2, 1.0, 1.0, 5.0])


def _features():
    return {"text": unit_rows(TEXT), "image": unit_rows(IMAGE)}


def test_loss_split_is_per_user_mean():
    assert loss_split(USERS, LOSSES, 3).tolist() == [True, False, False, True, True, True, True]


def _amsc(confidence, threshold):
    candidates = candidate_pairs(USERS, ITEMS, 3, _features(), confidence, threshold)
    return calibrate(USERS, LOSSES, 3, candidates), candidates


def test_amsc_hand_built_user():
    # spurious item 1: text-identical to reliable item 0 → S_modal = max(1, 0) = 1 > 0.9: recovered;
    # spurious item 2: best is reliable item 3 by text (0.8; image cos 0) → S_modal = 0.8 < 0.9: noisy
    part, _ = _amsc(np.ones(5, np.float32), 0.9)
    assert part.similarity[1] == pytest.approx(1.0)
    assert np.isnan(part.similarity[[0, 2, 3, 4, 5, 6]]).all()
    assert part.recovered.tolist() == [False, True, False, False, False, False, False]
    assert part.clean.tolist() == [True, True, False, True, True, True, True]
    # a lower threshold recovers item 2 as well (through item 3, S = 0.8); 1.0 recovers nothing
    low, _ = _amsc(np.ones(5, np.float32), 0.75)
    assert low.clean[:4].all() and low.similarity[2] == pytest.approx(0.8)
    assert not _amsc(np.ones(5, np.float32), 1.0)[0].recovered.any()


def test_amsc_low_confidence_blocks_recovery():
    # item 1's modalities disagree (S_conf 0.5): S = 1 × 0.5 stays under the threshold (Eq. 4)
    confidence = np.array([1, 0.5, 1, 1, 1], dtype=np.float32)
    part, candidates = _amsc(confidence, 0.9)
    assert not part.recovered.any() and 1 not in candidates.first
    # item 0 keeps its own confidence: as the recovered side it still pairs with item 1 (S = 1)
    assert (0, 1) in set(zip(candidates.first.tolist(), candidates.second.tolist()))


def test_negative_confidence_never_vouches():
    # S_modal(4, 4') would be −1 against item 0 for user 1; with S_conf(4) = −1 the raw product is +1
    confidence = np.array([1, 1, 1, 1, -1], dtype=np.float32)
    _, candidates = _amsc(confidence, 0.5)
    assert 4 not in candidates.first


@pytest.mark.parametrize("chunk_bytes", [64, 1 << 30])
def test_candidate_pairs_match_brute_force(chunk_bytes):
    rng = np.random.default_rng(3)
    n_users, n_items = 40, 30
    users = rng.integers(0, n_users, 600)
    items = rng.integers(0, n_items, 600)
    raw = {"a": rng.normal(size=(n_items, 6)), "b": rng.normal(size=(n_items, 4))}
    features = {m: unit_rows(x) for m, x in raw.items()}
    confidence = rng.random(n_items).astype(np.float32)
    got = candidate_pairs(users, items, n_users, features, confidence, 0.3, chunk_bytes=chunk_bytes)
    cos = np.maximum(*(f.numpy() @ f.numpy().T for f in features.values()))
    score = cos[items[:, None], items[None, :]] * confidence[items][:, None]
    expected = (users[:, None] == users[None, :]) & ~np.eye(600, dtype=bool) & (score > 0.3)
    assert sorted(zip(got.first.tolist(), got.second.tolist())) == sorted(zip(*np.nonzero(expected)))
    assert got.score == pytest.approx(score[got.first, got.second], abs=1e-5)
    # and the partition: recovered ⇔ spurious with a reliable candidate partner
    losses = rng.random(600)
    part = calibrate(users, losses, n_users, got)
    reliable = loss_split(users, losses, n_users)
    want = ~reliable & (expected & reliable[None, :]).any(1)
    assert part.recovered.tolist() == want.tolist()


def _paired_views(n=400, seed=0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 8))
    x = latent @ rng.normal(size=(8, 32)) + 0.3 * rng.normal(size=(n, 32)) + 5.0  # offset: b matters
    y = np.tanh(latent @ rng.normal(size=(8, 16))) + 0.3 * rng.normal(size=(n, 16))
    return x, y


def test_cca_codes_agree_more_for_an_items_own_modalities_than_for_random_pairs():
    x, y = _paired_views()
    fitted = fit_cca_hash(x, y, bits=8)
    cx, cy = fitted.codes(x, "x"), fitted.codes(y, "y")
    own = (cx * cy).mean(1).mean()
    shuffled = (cx * cy[np.random.default_rng(1).permutation(len(y))]).mean(1).mean()
    assert own > 0.5 and abs(shuffled) < 0.15
    assert set(np.unique(cx)) == {-1.0, 1.0} and fitted.bits == 8


def test_confidence_is_bounded_and_one_for_a_single_modality():
    x, y = _paired_views()
    conf = modality_confidence({"text": x, "image": y}, bits=64, scale="raw")
    assert conf.shape == (400,) and conf.dtype == np.float32
    assert (-1 <= conf).all() and (conf <= 1).all() and conf.mean() > 0.3
    assert (modality_confidence({"text": x}) == 1).all()
    # an item whose image is replaced by another item's gets lower confidence on average
    swapped = y.copy()
    swapped[:100] = y[100:200]
    conf_swapped = modality_confidence({"text": x, "image": swapped}, bits=64, scale="raw")
    assert conf_swapped[:100].mean() < conf[:100].mean() - 0.2


@pytest.mark.parametrize("method", ["cca", "learned"])
def test_relative_confidence_is_raw_over_its_mean_and_still_separates_swapped_items(method):
    x, y = _paired_views()
    swapped = y.copy()
    swapped[:100] = y[100:200]
    raw = modality_confidence({"text": x, "image": swapped}, bits=16, method=method, scale="raw")
    relative = modality_confidence({"text": x, "image": swapped}, bits=16, method=method)
    assert relative == pytest.approx(np.clip(raw / raw.astype(np.float64).mean(), -1, 1), abs=1e-6)
    assert np.median(relative[100:]) == 1.0  # a typical consistent item is fully trusted
    assert relative[:100].mean() < relative[100:].mean() - 0.3


def test_learned_hash_agrees_more_than_cca_on_its_own_items():
    from mmdenoise.denoise.guider.hashing import fit_learned_hash
    x, y = _paired_views()
    own = lambda f: (f.codes(x, "x") * f.codes(y, "y")).mean()  # noqa: E731
    shuffled = np.random.default_rng(1).permutation(len(y))
    learned = fit_learned_hash(x, y, bits=8, steps=100)
    assert own(learned) >= own(fit_cca_hash(x, y, bits=8)) - 0.02
    assert abs((learned.codes(x, "x") * learned.codes(y[shuffled], "y")).mean()) < 0.2


# ------------------------------------------------------------ the denoiser
from mmdenoise.api import train  # noqa: E402
from mmdenoise.data import read_mmrec  # noqa: E402
from mmdenoise.data.noise import inject_noise  # noqa: E402
from mmdenoise.data.synth import generate  # noqa: E402
from mmdenoise.denoise import DENOISERS  # noqa: E402
from tests.planted import planted_dataset  # noqa: E402

VARIANTS = ["guider", "guider-no-dbpr", "guider-no-kd", "guider-no-amsc", "guider-kl"]


@pytest.fixture(scope="module")
def noisy_tiny(tmp_path_factory):
    tiny = read_mmrec(generate("tiny", seed=0, out=tmp_path_factory.mktemp("synth") / "tiny"))
    return inject_noise(tiny, add=0.2, seed=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_train_through_the_trainer_and_report_detection(name, noisy_tiny, tmp_path):
    run = train(noisy_tiny, model="vbpr", denoiser=name, out=tmp_path / name,
                overrides=["train.epochs=2", "train.progress=false", "warmup_epochs=1"])
    assert all(np.isfinite(row["loss"]) for row in run.history)
    assert ("kd" in run.history[0]) == (name not in ("guider-no-kd",))
    detection = run.history[-1]["detection"]
    assert 0 <= detection["auc"] <= 1
    assert (tmp_path / name / "interaction_scores.npz").exists()


def test_variant_configs_differ_only_in_their_switch():
    base = DENOISERS["guider"].config_cls()
    assert DENOISERS["guider-no-dbpr"].config_cls().dbpr is False
    assert DENOISERS["guider-no-kd"].config_cls().kd == "none"
    assert DENOISERS["guider-no-amsc"].config_cls().amsc is False
    assert DENOISERS["guider-kl"].config_cls().kd == "kl"
    assert base.threshold == 0.9 and base.ot_reg == 0.1 and base.hash_bits == 64


def test_teacher_is_not_stepped_by_the_trainer_and_resume_restores_its_optimizer(noisy_tiny, tmp_path):
    from mmdenoise.api import build, resolve_config
    config = resolve_config({"dataset": "tiny", "model": "vbpr", "denoiser": "guider"}, ["warmup_epochs=1"])
    _, guider = build(noisy_tiny, config)
    trainable = {id(p) for p in guider.trainable_parameters()}
    assert not trainable & {id(p) for p in guider.teacher.parameters()}
    guider.epoch_start(0)  # one teacher pass: its Adam now has state
    state = guider.state_dict()
    _, fresh = build(noisy_tiny, config)
    fresh.load_state_dict(state)
    assert fresh.teacher_optimizer.state_dict()["state"].keys() == guider.teacher_optimizer.state_dict()["state"].keys()
    assert bool(fresh.calibrated) and torch.equal(fresh.clean, guider.clean)


def test_guider_needs_features():
    """Declared on the entry, refused where a run builds it (``api.build``), naming denoiser and dataset."""
    from mmdenoise.api import build, resolve_config
    from mmdenoise.errors import ConfigError
    assert DENOISERS["guider"].needs_features
    data = planted_dataset(n_users=20, n_items=40, modalities={})
    with pytest.raises(ConfigError, match=f"denoiser 'guider' needs item features; dataset {data.name!r} has no"):
        build(data, resolve_config({"model": "mf", "denoiser": "guider"}))


def test_the_teacher_is_any_trained_id_only_model():
    """GUIDER's ``teacher`` accepts the models whose entries need no features and train (read from MODELS)."""
    from mmdenoise.api import resolve_config
    from mmdenoise.errors import ConfigError
    from mmdenoise.models import MODELS
    teachers = [n for n, e in MODELS.items() if not e.needs_features and e.trained]
    assert sorted(teachers) == ["lightgcn", "mf"]
    for name in MODELS:
        raw = {"model": "mf", "denoiser": "guider", "denoiser_params": {"teacher": name}}
        if name in teachers:
            assert resolve_config(raw).denoiser_params["teacher"] == name
        else:
            with pytest.raises(ConfigError, match=r"\.teacher: must be one of lightgcn, mf, got"):
                resolve_config(raw)


def test_wide_modalities_are_reduced_before_cca_and_still_agree():
    x, y = _paired_views()
    wide = np.hstack([x, np.random.default_rng(2).normal(size=(400, 300)) * 0.01])  # 332-d
    fitted = fit_cca_hash(wide, y, bits=8, reduce_to=32)
    assert fitted.w_x.shape == (332, 8)
    own = (fitted.codes(wide, "x") * fitted.codes(y, "y")).mean()
    assert own > 0.5


@pytest.mark.parametrize("dbpr", [True, False])
def test_dbpr_pushes_teacher_scores_of_i_false_down_and_i_true_up(dbpr, noisy_tiny):
    """Eq. 7 through one teacher pass: an item judged noisy for every user is never a positive and is
    pushed below its users' clean items; with plain BPR (``dbpr=False``) it is still a positive."""
    from mmdenoise.api import build, resolve_config
    config = resolve_config({"dataset": "tiny", "model": "vbpr", "denoiser": "guider"},
                            ["teacher=mf", "teacher_lr=0.01", f"dbpr={str(dbpr).lower()}"])
    torch.manual_seed(0)
    _, guider = build(noisy_tiny, config)
    items = guider.train_items
    target = int(np.bincount(items).argmax())  # the most popular item: every one of its interactions
    judged_noisy = items == target
    guider.set_partition(~judged_noisy)
    users = torch.from_numpy(guider.train_users[judged_noisy])
    teacher = guider.teacher

    def margin():  # mean s(u, target) − mean over u's other (clean) training items
        with torch.no_grad():
            u_emb, i_emb = teacher()
            noisy = teacher.score(u_emb, i_emb, users, torch.full_like(users, target)).mean()
            others = ~judged_noisy & np.isin(guider.train_users, users.numpy())
            clean = teacher.score(u_emb, i_emb, torch.from_numpy(guider.train_users[others]),
                                  torch.from_numpy(items[others])).mean()
        return float(noisy - clean)

    before = margin()
    for _ in range(3):
        guider._teacher_epoch(np.random.default_rng(0))
    change = margin() - before
    if dbpr:
        assert change < -0.3  # I_false below I_true
    else:
        assert change > -0.05  # a positive like any other: no push below the user's other items


def test_pretrained_teacher_runs_its_epochs_and_recalibrations_before_the_student(noisy_tiny):
    from mmdenoise.api import build, resolve_config
    config = resolve_config({"dataset": "tiny", "model": "vbpr", "denoiser": "guider"},
                            ["teacher_pretrain_epochs=3", "warmup_epochs=2", "teacher_batch_size=100000"])
    _, guider = build(noisy_tiny, config)
    calls = []
    guider.recalibrate = lambda: calls.append("recalibrate")
    steps = lambda: int(next(iter(guider.teacher_optimizer.state.values()))["step"])  # noqa: E731
    guider.epoch_start(0)  # positions 0..3: four teacher passes (one batch each), recalibrations at 1, 2, 3
    assert steps() == 4 and calls == ["recalibrate"] * 3
    guider.epoch_start(1)  # position 4: one more of each
    assert steps() == 5 and len(calls) == 4


def test_a_non_finite_teacher_loss_stops_training_with_the_students_clear_error(noisy_tiny, tmp_path, monkeypatch):
    """The teacher steps through the trainer's ``optimizer_step``: a NaN in its loss is the same TrainingError
    as the student's, naming where and the term, and saying which checkpoint is kept; no step is taken."""
    from mmdenoise.errors import TrainingError
    from mmdenoise.models.mf import MF
    from mmdenoise.training import record
    original, calls = MF.regularization, {"n": 0}

    def poisoned(self, batch, user_emb, item_emb):  # the teacher's second pass (one batch per pass)
        calls["n"] += 1
        value = original(self, batch, user_emb, item_emb)
        return value * float("nan") if calls["n"] == 2 else value

    monkeypatch.setattr(MF, "regularization", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite loss at GUIDER teacher epoch 1, batch 0: loss term\(s\) "
                                            r"reg=nan; the best checkpoint so far is kept in") as info:
        train(noisy_tiny, model="vbpr", denoiser="guider", out=tmp_path / "run",
              overrides=["train.epochs=3", "train.progress=false", "teacher=mf", "teacher_batch_size=100000"])
    assert "\n" not in str(info.value)
    state = record.load_checkpoint(tmp_path / "run")
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in state["denoiser"].values()
                                       if torch.is_tensor(v) and v.is_floating_point())


def test_noisy_partners_are_drawn_on_the_device_from_each_users_own_noisy_items():
    """``NoisyGroups.draw`` (DBPR's noisy negative, Eq. 7): every drawn item is one of that user's I_false
    items, each of them comes up, and a user without any is masked out."""
    from mmdenoise.denoise.guider.amsc import grouped_by_user
    from mmdenoise.denoise.guider.denoiser import NoisyGroups
    users = np.array([0, 0, 0, 1, 1, 2])
    items = np.array([10, 11, 12, 20, 21, 30])
    noisy = np.array([1, 2, 4])                                  # user 0: items 11, 12; user 1: item 21; user 2: none
    order, start, count = grouped_by_user(noisy, users, 3)
    groups = NoisyGroups(items[order], start, count, torch.device("cpu"))
    torch.manual_seed(0)
    asked = torch.tensor([0, 1, 2] * 200)
    drawn, has = groups.draw(asked)
    assert has.tolist() == [True, True, False] * 200
    assert set(drawn[asked == 0].tolist()) == {11, 12} and set(drawn[asked == 1].tolist()) == {21}


def test_masked_weights_give_the_mean_over_the_mask():
    from mmdenoise.denoise.guider.denoiser import _mean_over
    from mmdenoise.losses import bpr_loss
    pos, neg = torch.tensor([2.0, 0.5, -1.0, 0.3]), torch.tensor([0.0, 1.0, 0.2, 0.3])
    mask = torch.tensor([True, False, True, False])
    assert torch.allclose(bpr_loss(pos, neg, weights=_mean_over(mask)), bpr_loss(pos[mask], neg[mask]))
    assert bpr_loss(pos, neg, weights=_mean_over(torch.zeros(4, dtype=torch.bool))) == 0
