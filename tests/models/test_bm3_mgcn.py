"""Known answers and behaviour of BM3 and MGCN (the contract suite covers the rest)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmdenoise.errors import ConfigError
from mmdenoise.graphs import normalized_adjacency
from mmdenoise.models.base import Batch
from mmdenoise.models.bm3 import cosine_distance
from mmdenoise.models.mgcn import info_nce
from tests.planted import planted_dataset


@pytest.fixture(scope="module")
def three_modalities():
    return planted_dataset(n_users=60, n_items=40, modalities={"a": 8, "b": 5, "c": 3}, seed=1)


def _batch(dataset, size=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(len(dataset.train), (size,), generator=generator)
    return Batch(torch.from_numpy(dataset.train.users)[index], torch.from_numpy(dataset.train.items)[index],
                 torch.randint(dataset.n_items, (size,), generator=generator), index)


def _leaves(model):
    """The model's outputs as fresh leaf tensors (to take gradients with respect to them)."""
    with torch.no_grad():
        user_emb, item_emb = model()
    return user_emb.clone().requires_grad_(True), item_emb.clone().requires_grad_(True)


# ----------------------------------------------------------------------- BM3
def test_bm3_loss_is_negative_free(planted, make_model):
    model = make_model("bm3", planted)
    batch = _batch(planted)
    other = Batch(batch.users, batch.pos_items, (batch.neg_items + 1) % planted.n_items, batch.index)
    user_emb, item_emb = model()
    values = []
    for b in (batch, other):
        torch.manual_seed(0)  # same target dropout masks
        values.append([model.rec_loss(b, user_emb, item_emb), model.extra_loss(b, user_emb, item_emb),
                       model.regularization(b, user_emb, item_emb)])
    assert all(torch.equal(x, y) for x, y in zip(*values))


def test_bm3_target_is_detached_dropout(planted, make_model):
    model = make_model("bm3", planted, dropout=0.5)
    online = torch.ones(2000, 64, requires_grad=True)
    target = model.target(online)
    assert not target.requires_grad
    dropped = (target == 0).float().mean().item()
    assert abs(dropped - 0.5) < 0.01
    assert torch.all((target == 0) | (target == 2.0))  # inverted dropout scaling (cosine ignores it)


def test_bm3_rec_loss_stops_gradients_at_the_targets(planted, make_model):
    model = make_model("bm3", planted, dropout=0.0)
    batch = _batch(planted)
    user_emb, item_emb = _leaves(model)
    model.rec_loss(batch, user_emb, item_emb).backward()
    u_ref, i_ref = user_emb.detach().clone().requires_grad_(True), item_emb.detach().clone().requires_grad_(True)
    u, i = u_ref[batch.users], i_ref[batch.pos_items]
    p = model.predictor
    expected = (1 - F.cosine_similarity(p(u), i.detach(), dim=-1).mean()
                + 1 - F.cosine_similarity(p(i), u.detach(), dim=-1).mean())
    expected.backward()
    assert torch.allclose(user_emb.grad, u_ref.grad, atol=1e-6)
    assert torch.allclose(item_emb.grad, i_ref.grad, atol=1e-6)
    # without the stop-gradient the gradients would differ
    u_all, i_all = u_ref.detach().clone().requires_grad_(True), i_ref.detach().clone().requires_grad_(True)
    u, i = u_all[batch.users], i_all[batch.pos_items]
    (cosine_distance(p(u), i) + cosine_distance(p(i), u)).backward()
    assert not torch.allclose(user_emb.grad, u_all.grad, atol=1e-6)


def test_bm3_extra_loss_known_answer(three_modalities, make_model):
    model = make_model("bm3", three_modalities, dropout=0.0, cl_weight=1.5)
    batch = _batch(three_modalities)
    user_emb, item_emb = model()
    h_i = item_emb[batch.pos_items]
    expected = 0.0
    for view in model.modality_item_emb().values():
        predicted = model.predictor(view[batch.pos_items])
        expected += (1 - F.cosine_similarity(predicted, h_i, dim=-1).mean()
                     + 1 - F.cosine_similarity(predicted, view[batch.pos_items], dim=-1).mean())
    assert len(model.modality_item_emb()) == 3
    assert torch.allclose(model.extra_loss(batch, user_emb, item_emb), 1.5 * expected, atol=1e-6)


def test_bm3_scores_are_dot_products_of_predicted_embeddings(planted, make_model):
    model = make_model("bm3", planted).eval()
    with torch.no_grad():
        user_emb, item_emb = model()
        users = torch.arange(planted.n_users)
        expected = model.predictor(user_emb) @ model.predictor(item_emb).T
        assert torch.allclose(model.full_scores(user_emb, item_emb, users), expected, atol=1e-5)
        assert not torch.allclose(expected, user_emb @ item_emb.T, atol=1e-3)


def test_bm3_forward_adds_the_layer0_item_embedding(planted, make_model):
    model = make_model("bm3", planted, n_layers=1)
    adj = normalized_adjacency(planted).to_dense()
    ego = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach()
    mean = (ego + adj @ ego) / 2
    with torch.no_grad():
        user_emb, item_emb = model()
    assert torch.allclose(user_emb, mean[: planted.n_users], atol=1e-6)
    assert torch.allclose(item_emb, mean[planted.n_users:] + ego[planted.n_users:], atol=1e-6)


def test_bm3_regularization_is_the_frobenius_norm_of_online_embeddings(planted, make_model):
    model = make_model("bm3", planted, reg_weight=0.1)
    user_emb, item_emb = model()
    expected = 0.1 * (user_emb.norm() + item_emb.norm()) / planted.n_items
    assert torch.allclose(model.regularization(_batch(planted), user_emb, item_emb), expected)


def test_bm3_rejects_bad_dropout(planted, make_model):
    with pytest.raises(ValueError, match="dropout"):
        make_model("bm3", planted, dropout=1.0)


# ---------------------------------------------------------------------- MGCN
def test_mgcn_purifier_gates_the_item_id_embedding(three_modalities, make_model):
    model = make_model("mgcn", three_modalities, n_layers=0)
    ids = model.item_embedding.weight
    purified = model.purified_items()
    assert len(purified) == 3
    for view, projection, purifier, (_, x) in zip(purified, model.projections, model.purifiers,
                                                  model.features.items()):
        assert view.shape == (three_modalities.n_items, 64)
        assert torch.allclose(view, ids * torch.sigmoid(purifier(projection(x))))
        assert torch.all(view.abs() <= ids.abs())
    # without item–item layers the modality views are the purified embeddings
    assert all(torch.equal(a, b) for a, b in zip(model.modality_item_emb().values(), purified))


def test_mgcn_attention_weights_sum_to_one_over_modalities(three_modalities, make_model):
    model = make_model("mgcn", three_modalities)
    n = 17
    views = torch.randn(n, 3, 64)
    side, weights = model.fuse(views, torch.randn(n, 64))
    assert side.shape == (n, 64) and weights.shape == (n, 3)
    assert torch.all(weights >= 0) and torch.allclose(weights.sum(-1), torch.ones(n))
    # identical modality views: uniform attention, no specific part, side = view / (M + 1)
    same = torch.randn(n, 1, 64).expand(n, 3, 64)
    side, weights = model.fuse(same, torch.randn(n, 64))
    assert torch.allclose(weights, torch.full((n, 3), 1 / 3))
    assert torch.allclose(side, same[:, 0] / 4, atol=1e-6)


def test_mgcn_user_views_aggregate_item_views(planted, make_model):
    n_users = planted.n_users
    block = normalized_adjacency(planted).to_dense()[:n_users, n_users:]
    model = make_model("mgcn", planted)
    x = torch.randn(planted.n_items, 5)
    assert torch.allclose(model.user_item(x), block @ x, atol=1e-6)
    mean = make_model("mgcn", planted, user_aggregation="mean")
    counts = torch.from_numpy(planted.interaction_matrix("train").toarray())
    assert torch.allclose(mean.user_item(x), (counts @ x) / counts.sum(1, keepdim=True), atol=1e-5)
    with pytest.raises(ConfigError, match="user_aggregation"):
        make_model("mgcn", planted, user_aggregation="max")


def test_mgcn_item_graphs_are_sparse_knn(planted, make_model):
    model = make_model("mgcn", planted, knn_k=7)
    for graph in model.item_graphs:
        assert graph.shape == (planted.n_items, planted.n_items)
        assert graph.m_values.numel() == 7 * planted.n_items  # k entries per row, never dense


def test_mgcn_forward_is_behaviour_plus_side_view(three_modalities, make_model):
    model = make_model("mgcn", three_modalities)
    behaviour = model.behaviour()
    views = torch.stack([torch.cat([model.user_item(v), v]) for v in model.item_views()], 1)
    side, _ = model.fuse(views, behaviour)
    user_emb, item_emb = model()
    assert torch.allclose(torch.cat([user_emb, item_emb]), behaviour + side, atol=1e-6)


def test_info_nce_known_answer():
    views = torch.eye(4) * 3.0  # orthonormal after normalisation
    expected = -math.log(math.exp(1 / 0.2) / (math.exp(1 / 0.2) + 3))
    assert math.isclose(info_nce(views, views, 0.2).item(), expected, rel_tol=1e-5)


def test_info_nce_with_counts_is_the_batch_with_its_repeated_rows():
    """Each distinct node once, weighted by its rows: the same value and gradients as the batch itself."""
    generator = torch.Generator().manual_seed(0)
    view = torch.randn(5, 8, generator=generator, requires_grad=True)
    other = torch.randn(5, 8, generator=generator, requires_grad=True)
    counts = torch.tensor([1, 3, 2, 1, 4])
    rows = torch.repeat_interleave(torch.arange(5), counts)[torch.randperm(11, generator=generator)]
    batch, compact = info_nce(view[rows], other[rows], 0.2), info_nce(view, other, 0.2, counts)
    assert torch.allclose(batch, compact, atol=1e-6)
    for g, h in zip(torch.autograd.grad(batch, [view, other]), torch.autograd.grad(compact, [view, other])):
        assert torch.allclose(g, h, atol=1e-6)
    assert torch.allclose(info_nce(view, other, 0.2, torch.ones(5, dtype=torch.long)), info_nce(view, other, 0.2))


def test_mgcn_extra_loss_equals_infonce_of_side_and_behaviour_views(planted, make_model):
    """The side view recovered as (final − behaviour) gives the same value and gradients as the side view,
    on a batch whose users and items repeat (each distinct one is computed once, weighted)."""
    model = make_model("mgcn", planted, cl_weight=0.5)
    batch = _batch(planted)
    assert batch.users.unique().numel() < len(batch) and batch.pos_items.unique().numel() < len(batch)
    user_emb, item_emb = model()
    loss = model.extra_loss(batch, user_emb, item_emb)
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)

    behaviour = model.behaviour()
    views = torch.stack([torch.cat([model.user_item(v), v]) for v in model.item_views()], 1)
    side, _ = model.fuse(views, behaviour)
    items = planted.n_users + batch.pos_items
    direct = 0.5 * (info_nce(side[items], behaviour[items], 0.2)
                    + info_nce(side[batch.users], behaviour[batch.users], 0.2))
    direct_grads = torch.autograd.grad(direct, list(model.parameters()), allow_unused=True)
    assert torch.isfinite(loss) and torch.allclose(loss, direct, atol=1e-5)
    for (name, _), g, h in zip(model.named_parameters(), grads, direct_grads):
        if h is None:
            assert g is None or g.abs().max() < 1e-6, name
        else:
            assert torch.allclose(g, h, atol=1e-5), name


def test_mgcn_extra_loss_reuses_forwards_behaviour_view_only_for_its_outputs(planted, make_model, monkeypatch):
    """Handed forward()'s outputs as returned, extra_loss reuses forward's behaviour view (no second
    propagation; same value and gradients as propagating again); handed anything else, it propagates."""
    model = make_model("mgcn", planted, cl_weight=0.5)
    batch = _batch(planted)
    calls = []
    propagate = model.behaviour
    monkeypatch.setattr(model, "behaviour", lambda: calls.append(1) or propagate())

    user_emb, item_emb = model()
    reused = model.extra_loss(batch, user_emb, item_emb)
    assert len(calls) == 1  # forward's propagation only
    reused_grads = torch.autograd.grad(reused, list(model.parameters()), allow_unused=True)

    user_emb, item_emb = model()
    fresh = model.extra_loss(batch, user_emb.clone(), item_emb.clone())  # not forward's outputs as returned
    assert len(calls) == 3
    fresh_grads = torch.autograd.grad(fresh, list(model.parameters()), allow_unused=True)
    assert torch.allclose(reused, fresh, atol=1e-6)
    for (name, _), g, h in zip(model.named_parameters(), reused_grads, fresh_grads):
        assert (g is None) == (h is None), name
        assert g is None or torch.allclose(g, h, atol=1e-6), name

    first = model()
    model()  # a later forward: the first outputs are stale for the kept view
    model.extra_loss(batch, *first)
    assert len(calls) == 6
    model.extra_loss(batch, *first)  # the kept view was consumed
    assert len(calls) == 7
    model.eval()
    with torch.no_grad():
        model.extra_loss(batch, *model())  # evaluation keeps nothing
    assert len(calls) == 9


def test_mgcn_contrastive_term_decreases_with_training(planted, make_model, fit):
    model = make_model("mgcn", planted)  # default cl_weight 0.01
    batch = _batch(planted, size=256, seed=5)
    with torch.no_grad():
        before = model.extra_loss(batch, *model()).item()
    losses = fit(model, planted, steps=100)
    with torch.no_grad():
        after = model.extra_loss(batch, *model()).item()
    assert np.isfinite(losses).all() and np.isfinite([before, after]).all()
    assert after < before, (before, after)
