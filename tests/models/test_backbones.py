"""The Backbone contract (docs/design.md, Contracts), passed by every registered model, plus known answers per model.

Contract: shapes; score agrees with full_scores; modality views; everything
moves with ``.to`` (dtype, meta, CUDA when present); deep copies and
state_dict round trips; gradients reach every trainable parameter;
deterministic under a seed; a short BPR run beats popularity on planted
data; a one-epoch smoke run through the trainer on the ``tiny`` preset.
"""
import copy

import numpy as np
import pytest
import torch

from mmdenoise.api import build, resolve_config, train
from mmdenoise.data import read_mmrec
from mmdenoise.data.synth import generate
from mmdenoise.errors import ConfigError
from mmdenoise.graphs import normalized_adjacency
from mmdenoise.models import MODELS
from mmdenoise.models.lightgcn import LightGCN
from mmdenoise.models.mf import MF
from tests.models.conftest import random_batch
from tests.planted import planted_dataset

# parametrised from the registry and its capabilities (a new entry joins every check); the checks read
# the entry of the name they are given, so they can be called on an entry registered later
ALL = list(MODELS)
LEARNERS = [name for name, entry in MODELS.items() if entry.trained]
MULTIMODAL = [name for name, entry in MODELS.items() if entry.needs_features]


def _tensors(model):
    return list(model.parameters()) + list(model.buffers())


def _outputs(model):
    with torch.no_grad():
        return model()


# ------------------------------------------------------------------ contract
@pytest.mark.parametrize("name", ALL)
def test_forward_shapes_and_scores(name, planted, make_model):
    model = make_model(name, planted).eval()
    user_emb, item_emb = model()
    assert user_emb.ndim == item_emb.ndim == 2 and user_emb.shape[1] == item_emb.shape[1]
    assert user_emb.shape[0] == planted.n_users and item_emb.shape[0] == planted.n_items
    assert user_emb.dtype == item_emb.dtype == torch.float32
    assert torch.isfinite(user_emb).all() and torch.isfinite(item_emb).all()
    users = torch.tensor([0, 5, 7, 7, planted.n_users - 1])
    items = torch.tensor([3, 1, 100, 0, planted.n_items - 1])
    full = model.full_scores(user_emb, item_emb, users)
    assert full.shape == (5, planted.n_items)
    pair = model.score(user_emb, item_emb, users, items)
    assert pair.shape == (5,)
    assert torch.allclose(pair, full[torch.arange(5), items], atol=1e-5)
    block = torch.full((5, planted.n_items), torch.nan)
    with torch.no_grad():            # out= is for evaluation: a product written in place has no gradient
        assert model.full_scores(user_emb, item_emb, users, out=block) is block
    assert torch.equal(block, full)


@pytest.mark.parametrize("name", LEARNERS)
def test_batch_scores_and_l2_gather_once_with_the_per_pair_values(name, planted, make_model):
    """``batch_scores`` and ``batch_l2`` gather each table once; their values and gradients are those of
    ``score`` on the positives and on the negatives and of the three per-role L2 terms."""
    model = make_model(name, planted).train()
    model.reg_weight = 1e-2          # the L2 term exists on every model
    batch = random_batch(planted, 64, torch.Generator().manual_seed(5))
    user_emb, item_emb = model()
    together = (*model.batch_scores(batch, user_emb, item_emb), model.batch_l2(batch, user_emb, item_emb))
    apart = (model.score(user_emb, item_emb, batch.users, batch.pos_items),
             model.score(user_emb, item_emb, batch.users, batch.neg_items),
             model.reg_weight * (user_emb[batch.users].pow(2).sum() + item_emb[batch.pos_items].pow(2).sum()
                                 + item_emb[batch.neg_items].pow(2).sum()) / (2 * len(batch)))
    for one, other in zip(together, apart):
        assert torch.allclose(one, other, atol=1e-6)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.autograd.grad(sum(t.sum() for t in terms), params, retain_graph=True, allow_unused=True)
             for terms in (together, apart)]
    for param, one, other in zip(params, *grads):
        zero = torch.zeros_like(param)
        assert torch.allclose(zero if one is None else one, zero if other is None else other, atol=1e-6)


@pytest.mark.parametrize("name", LEARNERS)
def test_batch_forward_rows_are_forwards_and_give_its_losses(name, planted, make_model):
    """A step's embeddings (``batch_forward``) agree with ``forward()`` on every row the batch uses, so
    every loss, and every gradient, is the same as from the full forward."""
    model = make_model(name, planted).train()
    model.epoch_start(0)
    batch = random_batch(planted, 64, torch.Generator().manual_seed(3))
    losses = []
    for embeddings in (model.batch_forward, lambda _: model()):
        torch.manual_seed(11)  # models with dropout in their losses draw the same masks
        user_emb, item_emb = embeddings(batch)
        items = torch.cat([batch.pos_items, batch.neg_items])
        losses.append([user_emb[batch.users], item_emb[items],
                       model.rec_loss(batch, user_emb, item_emb) + model.extra_loss(batch, user_emb, item_emb)
                       + model.regularization(batch, user_emb, item_emb)])
    for step, full in zip(*losses):
        assert torch.allclose(step, full, atol=1e-6)
    params = [p for p in model.parameters() if p.requires_grad]
    step_grads, full_grads = (torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
                              for loss in (losses[0][2], losses[1][2]))
    for param, step, full in zip(params, step_grads, full_grads):
        zero = torch.zeros_like(param)
        assert torch.allclose(zero if step is None else step, zero if full is None else full, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_modality_views(name, planted, make_model):
    views = make_model(name, planted).modality_item_emb()
    if MODELS[name].needs_features:
        assert set(views) == set(planted.features)
    for view in views.values():
        assert view.ndim == 2 and view.shape[0] == planted.n_items


@pytest.mark.parametrize("name", MULTIMODAL)
def test_multimodal_models_need_features(name):
    """The entry's capability, checked once where a run builds the model (``api.build``)."""
    bare = planted_dataset(n_users=20, n_items=40, modalities={})
    with pytest.raises(ConfigError, match=f"model {name!r} needs item features; dataset {bare.name!r} has no"):
        build(bare, resolve_config({"model": name}))


@pytest.mark.parametrize("name", ALL)
def test_to_dtype_and_meta_move_everything(name, planted, make_model):
    model = make_model(name, planted)
    model.epoch_start(0)
    model.to(torch.float64)
    assert all(t.dtype == torch.float64 for t in _tensors(model) if t.is_floating_point())
    user_emb, item_emb = model()
    assert user_emb.dtype == item_emb.dtype == torch.float64
    model.epoch_start(1)  # state built per epoch follows the model's dtype
    assert model()[1].dtype == torch.float64
    model.to("meta")
    assert all(t.device.type == "meta" for t in _tensors(model))
    assert model.device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ALL)
def test_runs_on_cuda(name, planted, make_model, fit, recall):
    model = make_model(name, planted).eval()
    # copies: MF's (and VBPR's user) embeddings are the parameters themselves, which .to moves in place
    expected = [t.clone() for t in _outputs(model)]
    model.to("cuda")
    assert all(t.is_cuda for t in _tensors(model))
    user_emb, item_emb = _outputs(model)
    assert user_emb.is_cuda and item_emb.is_cuda
    assert all(torch.allclose(a, b.cpu(), atol=1e-5) for a, b in zip(expected, (user_emb, item_emb)))
    assert model.full_scores(user_emb, item_emb, torch.arange(4, device="cuda")).is_cuda
    if MODELS[name].trained:
        losses = fit(model, planted, steps=5)  # epoch_start, backward and Adam on the device
        assert np.isfinite(losses).all() and all(t.is_cuda for t in _tensors(model))
    assert 0.0 <= recall(model, planted) <= 1.0


@pytest.mark.parametrize("name", ALL)
def test_deepcopy_and_state_dict_round_trip(name, planted, make_model):
    model = make_model(name, planted, seed=0).eval()
    clone = copy.deepcopy(model)
    assert all(torch.equal(a, b) for a, b in zip(_outputs(model), _outputs(clone)))
    other = make_model(name, planted, seed=1).eval()
    other.load_state_dict(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(_outputs(model), _outputs(other)))
    # graphs and features are data, not state: a checkpoint holds the learnt tensors only
    learnt = {n for n, _ in model.named_parameters()}
    assert set(model.state_dict()) - learnt <= {"popularity"}


@pytest.mark.parametrize("name", LEARNERS)
def test_gradients_reach_every_parameter(name, planted, make_model, make_batch):
    model = make_model(name, planted)
    model.train()
    model.epoch_start(0)
    batch = make_batch(planted, 64, torch.Generator().manual_seed(0))
    user_emb, item_emb = model()
    loss = (model.rec_loss(batch, user_emb, item_emb) + model.extra_loss(batch, user_emb, item_emb)
            + model.regularization(batch, user_emb, item_emb))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", ALL)
def test_deterministic_under_seed(name, planted, make_model):
    a, b = make_model(name, planted, seed=3).eval(), make_model(name, planted, seed=3).eval()
    assert all(torch.equal(x, y) for x, y in zip(_outputs(a), _outputs(b)))
    if MODELS[name].trained:
        c = make_model(name, planted, seed=4).eval()
        assert not torch.equal(_outputs(a)[0], _outputs(c)[0])


@pytest.mark.parametrize("name", LEARNERS)
def test_short_bpr_run_beats_popularity(name, planted, make_model, fit, recall):
    popularity = recall(make_model("pop", planted), planted)
    model = make_model(name, planted)
    losses = fit(model, planted, steps=100)
    assert np.isfinite(losses).all() and np.mean(losses[-10:]) < np.mean(losses[:10])
    trained = recall(model, planted)
    assert trained > popularity + 0.1, (trained, popularity)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return read_mmrec(generate("tiny", seed=0, out=tmp_path_factory.mktemp("synth") / "tiny"))


@pytest.mark.parametrize("name", ALL)
def test_one_epoch_smoke_on_tiny_preset(name, tiny, tmp_path):
    run = train(tiny, model=name, out=tmp_path / name, overrides=["train.epochs=1", "train.progress=false"])
    assert 0.0 <= run.test["recall@20"] <= 1.0
    assert len(run.history) == (1 if MODELS[name].trained else 0)
    assert all(np.isfinite(row["loss"]) for row in run.history)


# -------------------------------------------------------------- known answers
def test_lightgcn_is_the_layer_mean_of_dense_propagation(planted, make_model):
    model = make_model("lightgcn", planted, n_layers=3)
    adj = normalized_adjacency(planted).to_dense().double()
    ego = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double()
    layers = [ego]
    for _ in range(3):
        layers.append(adj @ layers[-1])
    expected = torch.stack(layers).mean(0)
    user_emb, item_emb = _outputs(model)
    assert torch.allclose(torch.cat([user_emb, item_emb]).double(), expected, atol=1e-5)


def test_lightgcn_without_layers_is_mf(planted):
    torch.manual_seed(0)
    mf = MF(planted.n_users, planted.n_items, 16)
    torch.manual_seed(0)
    lightgcn = LightGCN(planted.n_users, planted.n_items, normalized_adjacency(planted), 16, n_layers=0)
    assert all(torch.equal(a, b) for a, b in zip(_outputs(mf), _outputs(lightgcn)))


def test_lightgcn_rejects_a_graph_of_the_wrong_size(planted):
    with pytest.raises(ValueError, match="adjacency must be"):
        LightGCN(planted.n_users + 1, planted.n_items, normalized_adjacency(planted))


def test_vbpr_score_is_latent_plus_per_modality_content(planted, make_model):
    model = make_model("vbpr", planted, embedding_size=8)
    user_emb, item_emb = _outputs(model)
    assert user_emb.shape[1] == item_emb.shape[1] == 16
    latent_user, content_user = user_emb[:, :8], user_emb[:, 8:]
    views = model.modality_item_emb()
    expected = latent_user @ model.item_embedding.weight.T + sum(content_user @ v.T for v in views.values())
    users = torch.arange(planted.n_users)
    assert torch.allclose(model.full_scores(user_emb, item_emb, users), expected.detach(), atol=1e-5)


def test_popularity_scores_are_training_counts(planted, make_model):
    model = make_model("pop", planted)
    assert not list(model.parameters())
    scores = model.full_scores(*model(), torch.tensor([0, 9]))
    counts = torch.from_numpy(planted.item_popularity).float()
    assert torch.equal(scores, counts.expand(2, -1))
