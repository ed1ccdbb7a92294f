"""DA-MRS: known answers for D-BPR, AU and AI; its choice of item graphs (built and tested in
graphs/); the wrapper Backbone contract on MF, LightGCN and VBPR; one epoch through the real trainer."""
import copy

import numpy as np
import pytest
import torch

from mmdenoise.api import build, resolve_config, train
from mmdenoise.denoise import DENOISERS
from mmdenoise.denoise.base import StepState
from mmdenoise.denoise.damrs import DAMRSBackbone, DAMRSConfig, semantic_graphs
from mmdenoise.denoise.damrs.denoiser import (dissimilar_mask, graded_sets, graded_sets_from_similarity,
                                              subsample)
from mmdenoise.errors import ConfigError
from mmdenoise.graphs import denoised_knn_graphs, knn_graph
from mmdenoise.losses import bpr_loss
from mmdenoise.losses.damrs import denoised_bpr, graded_contrastive, reliability, symmetric_kl
from mmdenoise.models import MODELS
from mmdenoise.models.base import Batch
from tests.planted import planted_dataset


@pytest.fixture(autouse=True)
def _private_home_one_thread(monkeypatch, tmp_path):
    """Graph caches go to a per-test data home, never the user's; one torch thread (tiny problems: extra
    threads only add synchronisation, 50× slower on a busy machine), restored afterwards."""
    monkeypatch.setenv("MMDENOISE_HOME", str(tmp_path / "home"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------- D-BPR
def test_stable_dbpr_equals_naive_formula():
    g = torch.Generator().manual_seed(0)
    diff = torch.randn(64, generator=g, dtype=torch.float64) * 4
    f, gg = torch.rand(64, generator=g, dtype=torch.float64), torch.rand(64, generator=g, dtype=torch.float64)
    naive = -torch.log(f * torch.sigmoid(diff) + gg * (1 - torch.sigmoid(diff))).mean()
    assert torch.allclose(denoised_bpr(diff, f.log(), gg.log()), naive)
    # f = 1, g = 0 is BPR
    ones = torch.zeros(64, dtype=torch.float64)
    assert torch.allclose(denoised_bpr(diff, ones, torch.full_like(ones, -torch.inf)),
                          bpr_loss(diff, torch.zeros_like(diff)))


def test_stable_dbpr_is_finite_where_naive_is_not():
    diff = torch.tensor([200.0, -200.0, 200.0, -200.0], requires_grad=True)
    log_f = torch.tensor([0.0, 0.5, 0.3, 0.0]).log()  # f = 0, .5, .3, 0 (log f = −inf)
    log_g = torch.tensor([0.5, 0.0, 0.2, 0.4]).log()  # g = .5, 0, .2, .4
    naive = -torch.log(log_f.exp() * torch.sigmoid(diff) + log_g.exp() * (1 - torch.sigmoid(diff)))
    assert not torch.isfinite(naive[:2]).any()
    loss = denoised_bpr(diff, log_f, log_g)
    # per pair: −log g + 200, −log f + 200, −log(.3) (σ(200) = 1), −log(.4)
    expected = (np.log(2) + 200 + np.log(2) + 200 - np.log(.3) - np.log(.4)) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert torch.isfinite(diff.grad).all()


def test_reliability_weights_follow_eq_6_and_7():
    scores = torch.tensor([[2.0, 0.0, -1.0], [-3.0, -2.0, -4.0]], dtype=torch.float64)
    log_f, log_g = reliability(scores, torch.tensor(0.3, dtype=torch.float64), alpha=1.5, beta=1.5, gamma=2.0)
    p = torch.sigmoid(scores)
    mu, var = p.mean(1), p.var(1, unbiased=False)
    assert torch.allclose(log_f.exp(), mu ** 1.5 * torch.exp(-var) ** 1.5)
    # row 0: μ ≈ .46 > ŷ_n = .3 → g = 0; row 1: μ ≈ .05 < .3 → g = σ(max − ŷ_n)^γ = σ(−2.3)²
    assert log_g[0] == -torch.inf
    assert float(log_g[1].exp()) == pytest.approx(float(torch.sigmoid(torch.tensor(-2.3)) ** 2), rel=1e-6)
    extreme = reliability(torch.tensor([[1e4, -1e4], [-1e4, -1e4]]), torch.tensor(0.5), 1.5, 1.5, 1.0)
    assert torch.isfinite(extreme[0]).all() and not torch.isnan(extreme[1]).any()


# ------------------------------------------------------------------------- AU
def test_au_is_the_symmetric_kl_and_finite_at_extremes():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 9, generator=g, dtype=torch.float64), torch.randn(4, 9, generator=g, dtype=torch.float64)
    p, q = torch.softmax(a, 1), torch.softmax(b, 1)
    naive = ((p * (p / q).log()).sum(1) + (q * (q / p).log()).sum(1)).mean()
    assert torch.allclose(symmetric_kl(a, b), naive)
    assert float(symmetric_kl(a, a)) == 0.0
    big = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], requires_grad=True)
    loss = symmetric_kl(big, big.flip(1))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(big.grad).all()


# ------------------------------------------------------------------------- AI
def test_ai_sets_on_a_hand_built_similarity():
    # anchor item 0 over items 0..5; both rows hold the same values, so both softmaxes share one
    # normaliser Z and R^1_j ∝ 2e^{T1_j} + e^{T2_j}, R^2_j ∝ e^{T1_j} + 2e^{T2_j}:
    #   item:      1      2      3      4      5
    #   T1:        .9     .8     0      .5     .1
    #   T2:        0      .8     .9     .1     .5
    #   R^1·Z:   5.92   6.68   4.46   4.40   3.86
    #   R^2·Z:   4.46   6.68   5.92   3.86   4.40
    # k = 2: view 1 multi {2, 1}, single = top-2 T1 of {3, 4, 5} = {4, 5};
    #        view 2 multi {2, 3}, single = top-2 T2 of {1, 4, 5} = {5, 4}.
    # k = 3: view 1 multi {2, 1, 3} (item 3 beats 4 on the strength of view 2), single {4, 5}.
    t1 = torch.tensor([[1.0, .9, .8, 0.0, .5, .1]])
    t2 = torch.tensor([[1.0, 0.0, .8, .9, .1, .5]])
    anchors = torch.tensor([0])
    (m1, m2), (s1, s2) = graded_sets_from_similarity(torch.stack([t1, t2]), anchors, 2)
    assert m1[0].tolist() == [2, 1] and set(s1[0].tolist()) == {4, 5}
    assert m2[0].tolist() == [2, 3] and set(s2[0].tolist()) == {4, 5}
    (m1, _), (s1, _) = graded_sets_from_similarity(torch.stack([t1, t2]), anchors, 3)
    assert m1[0].tolist() == [2, 1, 3] and set(s1[0].tolist()) == {4, 5}


def test_ai_sets_from_embeddings_in_chunks_exclude_the_anchor(monkeypatch):
    import mmdenoise.denoise.damrs.denoiser as module
    h = torch.nn.functional.normalize(torch.randn(30, 4, generator=torch.Generator().manual_seed(2)), dim=1)
    views = torch.stack([h, h.flip(1)])
    anchors = torch.tensor([0, 3, 7, 8, 20, 29])
    whole = graded_sets(views, anchors, 4)
    monkeypatch.setattr(module, "SELECTION_ELEMENTS", 2 * 30 * 2)  # two anchors per chunk
    chunked = graded_sets(views, anchors, 4)
    for (m, s), (mc, sc) in zip(zip(*whole), zip(*chunked)):
        assert torch.equal(m, mc) and torch.equal(s, sc)
        assert m.shape == s.shape == (6, 4)
        sets = torch.cat([m, s], 1)
        assert not (sets == anchors[:, None]).any()
        assert all(len(set(row)) == 8 for row in sets.tolist())
    # cosines: rows scaled by any positive factor (raw, not unit, views) give the same sets
    scale = torch.rand(2, 30, 1, generator=torch.Generator().manual_seed(3)) * 5 + 0.1
    for a, b in zip(graded_sets(views * scale, anchors, 4), whole):
        assert torch.equal(a, b)


def test_dissimilar_mask():
    anchors = torch.tensor([1, 4, 6, 9])
    multi = torch.tensor([[4, 2], [1, 3], [0, 5], [6, 4]])
    single = torch.tensor([[7, 8], [6, 9], [1, 4], [2, 3]])
    expected = torch.tensor([[0, 0, 1, 1],   # anchor 1: 4 similar, 1 itself
                             [0, 0, 0, 0],   # anchor 4: 1, 6, 9 similar
                             [0, 0, 0, 1],   # anchor 6: 1, 4 similar
                             [1, 0, 0, 0]], dtype=torch.bool)  # anchor 9: 6, 4 similar
    assert torch.equal(dissimilar_mask(anchors, anchors, multi, single), expected)
    # a subset of anchors against the whole batch: the rows of the anchors kept
    assert torch.equal(dissimilar_mask(anchors[[1, 3]], anchors, multi[[1, 3]], single[[1, 3]]), expected[[1, 3]])


def test_subsample_draws_distinct_ids_in_order_and_keeps_small_sets():
    ids = torch.arange(100, 200)
    assert subsample(ids, 0) is ids and subsample(ids, 100) is ids
    torch.manual_seed(0)
    drawn = subsample(ids, 10)
    assert drawn.shape == (10,) and torch.unique(drawn).shape == (10,)
    assert torch.equal(drawn, drawn.sort().values) and bool(((drawn >= 100) & (drawn < 200)).all())
    torch.manual_seed(0)
    assert torch.equal(subsample(ids, 10), drawn)  # torch's (per-epoch seeded) RNG decides


def test_graded_contrastive_matches_eq_11():
    g = torch.Generator().manual_seed(0)
    multi, single = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g,
                                                                                     dtype=torch.float64)
    batch = torch.randn(5, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(5, 6, generator=g) < 0.5
    mask[0] = False  # an anchor without dissimilar items
    r, t = multi.exp().sum(1), single.exp().sum(1)
    n = (batch.exp() * mask).sum(1)
    expected = {"full": (-(r / (r + t + n)).log() - (t / (t + n)).log()).mean(),
                "sp": (-((r + t) / (r + t + n)).log()).mean(),
                "mp": (-(r / (r + t + n)).log()).mean()}
    for strategy, value in expected.items():
        assert torch.allclose(graded_contrastive(multi, single, batch, mask, strategy), value)
    empty = graded_contrastive(multi, single[:, :0], batch, mask)
    assert torch.allclose(empty, (-(r / (r + n)).log()).mean())
    with pytest.raises(ValueError, match="strategy"):
        graded_contrastive(multi, single, batch, mask, "xx")


# -------------------------------------------------------------- wrapper model
@pytest.fixture(scope="module")
def planted():
    return planted_dataset(n_users=60, n_items=40, per_user=8, seed=0)


def _damrs(name, dataset, seed=0, **params):
    torch.manual_seed(seed)
    backbone = MODELS[name].build(dataset, MODELS[name].config_cls())
    return DENOISERS["damrs"].build(dataset, backbone, DAMRSConfig(**params))


def _batch(dataset, size=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(len(dataset.train), (size,), generator=g)
    return Batch(torch.from_numpy(dataset.train.users)[index], torch.from_numpy(dataset.train.items)[index],
                 torch.randint(dataset.n_items, (size,), generator=g), index)


@pytest.mark.parametrize("name", ["mf", "lightgcn", "vbpr"])
def test_wrapper_contract(name, planted):
    den = _damrs(name, planted)
    model = den.backbone
    assert isinstance(model, DAMRSBackbone)
    inner_user, inner_item = model.inner()
    user_emb, item_emb = model()
    width = 128 if name == "vbpr" else 64  # VBPR's items are [ID ‖ content], propagated whole
    assert user_emb.shape == (planted.n_users, width) and item_emb.shape == (planted.n_items, width)
    assert torch.equal(user_emb, inner_user)
    v = model.views()
    assert torch.allclose(v.content, torch.stack(v.graph_views()).mean(0), atol=1e-6)
    assert torch.allclose(v.item, (inner_item + torch.stack(v.graph_views()).mean(0)) / 2, atol=1e-6)
    assert set(model.modality_item_emb()) == set(planted.features)
    users, items = torch.tensor([0, 3, 3]), torch.tensor([1, 0, 39])
    assert torch.allclose(model.score(user_emb, item_emb, users, items),
                          model.full_scores(user_emb, item_emb, users)[torch.arange(3), items], atol=1e-6)
    # gradients reach every parameter of the inner backbone through the DA-MRS loss
    loss, terms = den.loss(_batch(planted), StepState(0, 0))
    assert torch.isfinite(loss) and all(torch.isfinite(t) for t in terms.values())
    loss.backward()
    for pname, p in den.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname
    # graphs and features are data: the state is the inner model's parameters
    assert set(den.state_dict()) == {f"backbone.{n}" for n, _ in model.named_parameters()}
    clone = copy.deepcopy(den)
    assert all(torch.equal(a, b) for a, b in zip(model(), clone.backbone()))
    den.to(torch.float64)
    assert all(t.dtype == torch.float64 for t in list(den.parameters()) + list(den.buffers())
               if t.is_floating_point())
    loss64, _ = den.loss(_batch(planted), StepState(0, 0))
    assert loss64.dtype == torch.float64 and torch.isfinite(loss64)
    scores = den.interaction_scores()
    assert scores.dtype == np.float32 and scores.shape == (len(planted.train),)
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()


@pytest.mark.parametrize("params", [{}, {"ai_refresh": "epoch"}, {"ai": False}, {"dbpr": False, "ai": False},
                                    {"fg_gradient": True}])
def test_a_step_without_au_computes_only_the_rows_it_reads(planted, monkeypatch, params):
    """Without AU the loss reads the batch's items and AI's similar sets only: the step computes the graph
    views at those rows, and its loss and every gradient equal those of the whole views."""
    batch = _batch(planted)

    def loss_and_grads():
        den = _damrs("vbpr", planted, **params)
        torch.manual_seed(1)  # AI's anchors
        loss, _ = den.loss(batch, StepState(0, 0))
        loss.backward()
        return loss.detach(), {n: p.grad for n, p in den.named_parameters()}

    rows_loss, rows_grads = loss_and_grads()
    whole_views = DAMRSBackbone.item_views
    monkeypatch.setattr(DAMRSBackbone, "item_views", lambda self, u, h, rows=None: whole_views(self, u, h))
    whole_loss, whole_grads = loss_and_grads()
    assert torch.allclose(rows_loss, whole_loss, rtol=1e-6)
    for name, grad in whole_grads.items():
        assert torch.allclose(rows_grads[name], grad, rtol=1e-5, atol=1e-8), name


def test_without_au_no_whole_graph_product_is_differentiated(planted, monkeypatch):
    """The row-restricted step is the one taken: without AU and AI no whole-graph product runs at all, with
    AI's per-batch sets only without gradient (to choose them), with AU every view is whole."""
    from mmdenoise.graphs import SparseOperator
    whole = SparseOperator.forward
    calls = []
    monkeypatch.setattr(SparseOperator, "forward",
                        lambda self, dense: calls.append(torch.is_grad_enabled()) or whole(self, dense))
    for params, expected in [({"ai": False}, []), ({}, [False] * 3), ({"au": True}, [True] * 3)]:
        calls.clear()
        _damrs("vbpr", planted, **params).loss(_batch(planted), StepState(0, 0))
        assert calls == expected, params


def test_views_of_some_rows_equal_those_rows_of_every_items_views(planted):
    model = _damrs("vbpr", planted).backbone
    rows = torch.tensor([0, 5, 17, 39])
    whole, part = model.views(), model.views(rows)
    for a, b in zip([*whole.graph_views(), whole.content, whole.item], [*part.graph_views(), part.content, part.item]):
        assert b.shape == (4, a.shape[1]) and torch.allclose(b, a[rows], atol=1e-6)
    assert torch.equal(part.item_id, whole.item_id) and torch.equal(part.user, whole.user)
    assert torch.equal(part.at(torch.tensor([39, 0, 17])), torch.tensor([3, 0, 2]))
    assert torch.equal(whole.at(torch.tensor([39, 0])), torch.tensor([39, 0]))


def test_au_in_checkpointed_user_chunks_equals_the_whole(planted, monkeypatch):
    import mmdenoise.denoise.damrs.denoiser as module
    den = _damrs("lightgcn", planted)
    batch = _batch(planted)

    def au_and_grads():
        den.zero_grad(set_to_none=True)
        v = den.backbone.views()
        value = den.user_alignment(v.user, v.content, v.item_id, batch.users)
        value.backward()
        return value.detach(), [p.grad.clone() for p in den.parameters() if p.grad is not None]

    whole, whole_grads = au_and_grads()
    monkeypatch.setattr(module, "AU_ELEMENTS", 3 * planted.n_items)  # three users per chunk
    chunked, chunked_grads = au_and_grads()
    assert torch.allclose(whole, chunked, rtol=1e-5, atol=1e-7)
    assert len(whole_grads) == len(chunked_grads) > 0
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(whole_grads, chunked_grads))


def test_item_alignment_is_the_sum_over_views_of_eq_11(planted):
    """All views in one batched pass equal a plain loop over the views, one Eq. 11 term each."""
    den = _damrs("lightgcn", planted, ai_anchors=0)
    batch = _batch(planted)
    items = torch.unique(torch.cat([batch.pos_items, batch.neg_items]))
    views = den.backbone.views().graph_views()
    units = [torch.nn.functional.normalize(h, dim=1) for h in views]
    multi, single = graded_sets(torch.stack(units).detach(), items, den.ai_k)
    expected = 0.0
    for m, unit in enumerate(units):
        cos = unit[items] @ unit.T / den.ai_tau  # [N, I]
        rows = torch.arange(items.shape[0])[:, None]
        expected = expected + graded_contrastive(cos[rows, multi[m]], cos[rows, single[m]], cos[:, items],
                                                 dissimilar_mask(items, items, multi[m], single[m]))
    assert torch.allclose(den.item_alignment(views, items), expected, rtol=1e-5)


def test_sampled_alignment_is_an_unbiased_estimate_of_the_batch_mean(planted):
    """AU and AI over a random subset of the batch's users / anchors average to the all-batch value, because
    each user's (anchor's) term does not depend on which others are drawn."""
    batch = _batch(planted, size=96)
    exact = _damrs("lightgcn", planted, au_users=0, ai_anchors=0)
    sampled = _damrs("lightgcn", planted, au_users=8, ai_anchors=8)
    sampled.load_state_dict(exact.state_dict())
    with torch.no_grad():
        v = exact.backbone.views()
        items = torch.unique(torch.cat([batch.pos_items, batch.neg_items]))
        terms = {"au": lambda d: d.user_alignment(v.user, v.content, v.item_id, batch.users),
                 "ai": lambda d: d.item_alignment(v.graph_views(), items)}
        torch.manual_seed(0)
        for name, term in terms.items():
            draws = torch.stack([term(sampled) for _ in range(400)])
            assert draws.std() > 0  # the subsets differ
            assert abs(draws.mean() - term(exact)) < 4 * draws.std() / 20, name


def test_ablation_switches(planted):
    batch = _batch(planted)
    assert {"dbpr", "ai"} <= set(_damrs("lightgcn", planted).loss(batch, StepState(0, 0))[1])  # AU off by default
    full = _damrs("lightgcn", planted, au=True)
    _, terms = full.loss(batch, StepState(0, 0))
    assert {"dbpr", "au", "ai", "extra", "reg"} <= set(terms)
    plain = _damrs("lightgcn", planted, dbpr=False, au=False, ai=False)
    _, terms = plain.loss(batch, StepState(0, 0))
    assert {"rec", "extra", "reg"} <= set(terms) and not {"dbpr", "au", "ai"} & set(terms)
    # f ≡ 1 and g ≡ 0 reduce D-BPR to BPR on t
    bare = _damrs("lightgcn", planted, use_f=False, use_g=False, au=False, ai=False)
    _, terms = bare.loss(batch, StepState(0, 0))
    user_emb, item_emb = bare.backbone()
    assert torch.allclose(terms["dbpr"], bare.backbone.rec_loss(batch, user_emb, item_emb))
    for strategy in ("sp", "mp"):
        loss, _ = _damrs("lightgcn", planted, ai_strategy=strategy).loss(batch, StepState(0, 0))
        assert torch.isfinite(loss)
    iig = _damrs("lightgcn", planted, graph="iig", cooccurrence_weights="binary")
    assert torch.isfinite(iig.loss(batch, StepState(0, 0))[0])
    # sets chosen once per epoch equal the per-batch sets while the parameters have not moved
    per_epoch = _damrs("lightgcn", planted, au=True, ai_refresh="epoch")
    per_epoch.epoch_start(0)
    assert per_epoch.multi_sets.shape == (3, planted.n_items, 10)  # image, text, behaviour
    assert torch.allclose(per_epoch.loss(batch, StepState(0, 0))[0], full.loss(batch, StepState(0, 0))[0])


def test_without_g_dbpr_trains_exactly_like_bpr(planted):
    """f is detached, so −log(f·σ(Δ)) = −log f − log σ(Δ) has BPR's gradient: the paper's "−g" row is BPR on t."""
    batch = _batch(planted)
    grads = []
    for params in ({"use_g": False}, {"dbpr": False}):
        model = _damrs("lightgcn", planted, ai=False, **params)
        loss, terms = model.loss(batch, StepState(0, 0))
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
        assert ("flip_share" in terms) == model.dbpr  # logged only with D-BPR; g ≡ 0 never exceeds f
        assert not model.dbpr or float(terms["flip_share"]) == 0.0
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(*grads))
    # with g, flip_share is the share of the batch where g > f: D-BPR's optimum ranks the negative first
    model = _damrs("lightgcn", planted, ai=False, gamma=1.0)
    _, terms = model.loss(batch, StepState(0, 0))
    assert terms["flip_share"] > 0
    v = model.backbone.views()
    scores = torch.stack([model.backbone.score(v.user, h, batch.users, batch.pos_items) for h in v.graph_views()], 1)
    neg = model.backbone.score(v.user, v.item, batch.users, batch.neg_items)
    log_f, log_g = reliability(scores, torch.sigmoid(neg).mean(), model.alpha, model.beta, model.gamma)
    assert torch.isclose(terms["flip_share"], (log_g > log_f).float().mean())


def test_fg_gradient_learns_through_f_and_g(planted):
    """``fg_gradient``: Eq. 8 as a likelihood in the parameters. Without g the loss is BPR's plus −mean log f,
    now with the gradient of log f (the views' scores of the positives), which the default drops."""
    batch = _batch(planted)
    grads = {}
    for learnt in (False, True):
        model = _damrs("lightgcn", planted, ai=False, use_g=False, fg_gradient=learnt)
        model.loss(batch, StepState(0, 0))[0].backward()
        grads[learnt] = [p.grad.clone() for p in model.parameters()]
    by_hand = _damrs("lightgcn", planted, ai=False, dbpr=False)
    loss, _ = by_hand.loss(batch, StepState(0, 0))
    v = by_hand.backbone.views()
    scores = torch.stack([by_hand.backbone.score(v.user, h, batch.users, batch.pos_items) for h in v.graph_views()], 1)
    neg = by_hand.backbone.score(v.user, v.item, batch.users, batch.neg_items)
    log_f, _ = reliability(scores, torch.sigmoid(neg).mean(), by_hand.alpha, by_hand.beta, by_hand.gamma)
    (loss - log_f.mean()).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-7) for a, p in zip(grads[True], by_hand.parameters()))
    assert any((a - b).abs().max() > 1e-5 for a, b in zip(grads[True], grads[False]))
    # with g as well: finite, and the judgement still records f without gradient
    model = _damrs("lightgcn", planted, ai=False, gamma=1.0, fg_gradient=True)
    loss, terms = model.loss(batch, StepState(0, 0))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert not terms["flip_share"].requires_grad and np.isfinite(model.interaction_scores()).all()


def test_semantic_graphs_follow_the_graph_setting(planted):
    """``graph: diig`` is DIIG (Eq. 1, tests/graphs/test_diig.py), ``iig`` the plain kNN graph with self-loops."""
    diig = semantic_graphs(planted, DAMRSConfig(topk=4))
    assert list(diig) == list(planted.features)
    expected = denoised_knn_graphs(planted.features, 4)
    assert all((diig[m] != expected[m]).nnz == 0 for m in diig)
    iig = semantic_graphs(planted, DAMRSConfig(topk=4, graph="iig"))
    assert all((iig[m] != knn_graph(x, 4, include_self=True)).nnz == 0 for m, x in planted.features.items())


def test_bad_settings_and_featureless_data(planted):
    for bad in ({"graph": "lattice"}, {"ai_strategy": "both"}, {"ai_refresh": "never"}, {"topk": 0}, {"alpha": 0.0},
                {"cooccurrence_weights": "tfidf"}, {"lambda_au": -1.0}, {"au_users": -1}):
        with pytest.raises(ConfigError, match=rf"denoiser_params \(damrs\)\.{next(iter(bad))}: must be"):
            resolve_config({"model": "mf", "denoiser": "damrs", "denoiser_params": bad})
    bare = planted_dataset(n_users=20, n_items=12, per_user=4, modalities={})
    assert DENOISERS["damrs"].needs_features  # refused where a run builds it, naming denoiser and dataset
    with pytest.raises(ConfigError, match=f"denoiser 'damrs' needs item features; dataset {bare.name!r}"):
        build(bare, resolve_config({"model": "mf", "denoiser": "damrs"}))


def test_one_epoch_through_the_trainer(planted, tmp_path):
    run = train(planted, model="lightgcn", denoiser="damrs", out=tmp_path / "run",
                overrides=["train.epochs=1", "train.progress=false", "train.threads=1", "train.batch_size=128",
                           "au=true", "lambda_au=1.0"])
    assert 0.0 <= run.test["recall@20"] <= 1.0
    assert len(run.history) == 1 and np.isfinite(run.history[0]["loss"])
    assert {"dbpr", "au", "ai"} <= set(run.history[0])
    assert run.config.denoiser_params["lambda_au"] == 1.0
    scores = run.denoiser.interaction_scores()
    assert scores.shape == (len(planted.train),) and np.isfinite(scores).all()
