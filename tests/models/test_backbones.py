"""The Backbone contract, passed by every registered model (DESIGN §2, §5).

Shapes; score agrees with full_scores; everything moves with ``.to``;
gradients reach every trainable parameter; deterministic under a seed; a
one-epoch smoke run on the ``tiny`` preset; beats popularity on planted data.
"""
import numpy as np
import pytest
import torch

from mmdenoise.api import build, resolve_config, train
from mmdenoise.data import read_mmrec
from mmdenoise.data.synth import generate
from mmdenoise.denoise.base import StepState
from mmdenoise.models import MODELS
from mmdenoise.models.base import Batch
from tests.planted import planted_dataset

LEARNERS = [m for m in MODELS if m != "pop"]


@pytest.fixture(scope="module")
def data():
    return planted_dataset(n_users=200, n_items=120, seed=0)


def _make(name, data, seed=0):
    return build(data, resolve_config({"model": name, "seed": seed}))


def _batch(data, size=64):
    idx = torch.arange(size)
    rng = np.random.default_rng(0)
    return Batch(torch.from_numpy(data.train.users[:size]), torch.from_numpy(data.train.items[:size]),
                 torch.from_numpy(rng.integers(0, data.n_items, size)), idx)


@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_and_scores(name, data):
    backbone, _ = _make(name, data)
    user_emb, item_emb = backbone()
    assert user_emb.shape[0] == data.n_users and item_emb.shape[0] == data.n_items
    users = torch.tensor([0, 5, 7])
    full = backbone.full_scores(user_emb, item_emb, users)
    assert full.shape == (3, data.n_items)
    items = torch.tensor([3, 1, 100])
    assert torch.allclose(backbone.score(user_emb, item_emb, users, items), full[torch.arange(3), items], atol=1e-5)
    for view in backbone.modality_item_emb().values():
        assert view.shape[0] == data.n_items


@pytest.mark.parametrize("name", list(MODELS))
def test_everything_moves_with_to(name, data):
    backbone, _ = _make(name, data)
    backbone.to(torch.device("cpu"), dtype=torch.float64)
    assert all(t.dtype == torch.float64 for t in backbone.parameters())
    assert all(t.dtype == torch.float64 for t in backbone.buffers() if t.is_floating_point())
    backbone.to(torch.float32)
    if torch.cuda.is_available():
        backbone.to("cuda")
        assert all(t.is_cuda for t in list(backbone.parameters()) + list(backbone.buffers()))
        user_emb, item_emb = backbone()
        assert user_emb.is_cuda


@pytest.mark.parametrize("name", LEARNERS)
def test_gradients_reach_every_parameter(name, data):
    backbone, denoiser = _make(name, data)
    loss, terms = denoiser.loss(_batch(data), StepState(0, 0))
    loss.backward()
    for pname, p in backbone.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    assert set(terms) == {"rec", "extra", "reg"}


@pytest.mark.parametrize("name", LEARNERS)
def test_deterministic_under_seed(name, data):
    a, _ = _make(name, data, seed=1)
    b, _ = _make(name, data, seed=1)
    c, _ = _make(name, data, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a(), b()))
    assert not torch.equal(a()[0], c()[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return read_mmrec(generate("tiny", seed=0, out=tmp_path_factory.mktemp("synth") / "tiny"))


@pytest.mark.parametrize("name", list(MODELS))
def test_one_epoch_smoke_on_tiny_preset(name, tiny, tmp_path):
    run = train(tiny, model=name, out=tmp_path / name, overrides=["train.epochs=1", "train.progress=false"])
    assert 0.0 <= run.test["recall@20"] <= 1.0
    assert len(run.history) == (0 if name == "pop" else 1)
    assert all(np.isfinite(row["loss"]) for row in run.history)


@pytest.mark.parametrize("name", LEARNERS)
def test_beats_popularity_on_planted_data(name, data, tmp_path):
    common = ["train.progress=false", "train.batch_size=256", "train.epochs=40", "train.lr=0.01"]
    pop = train(data, model="pop", out=tmp_path / "pop", overrides=common)
    run = train(data, model=name, out=tmp_path / name, overrides=common)
    assert run.test["recall@10"] > pop.test["recall@10"] + 0.05, (run.test["recall@10"], pop.test["recall@10"])
