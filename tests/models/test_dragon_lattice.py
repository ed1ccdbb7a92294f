"""DRAGON and LATTICE against dense reference computations; any number of modalities; LATTICE's
neighbour refresh modes. (The shared contract runs in test_backbones.py.)"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmdenoise.errors import ConfigError
from mmdenoise.graphs import cooccurrence_graph, normalized_adjacency, softmax_rows
from mmdenoise.models.freedom import default_mix, mixed_item_graph
from mmdenoise.models.lattice import initial_graph
from tests.planted import planted_dataset


def _dense_topk_graph(z: torch.Tensor, k: int) -> torch.Tensor:
    """LATTICE Eq. 2–3 densely: cosine, keep the top-k values per row (self included), D^-1/2 S D^-1/2."""
    z = F.normalize(z, dim=1)
    sims = z @ z.T
    top = torch.topk(sims + 10 * torch.eye(len(z), dtype=z.dtype), k, dim=1).indices
    s = torch.zeros_like(sims).scatter(1, top, sims.gather(1, top))
    d = s.sum(1).rsqrt()
    return d[:, None] * s * d[None, :]


def test_lattice_matches_a_dense_reference(planted, make_model):
    model = make_model("lattice", planted, knn_k=5, lambda_coeff=0.7, n_layers=2).double().eval()
    with torch.no_grad():
        model.modality_logits.copy_(torch.tensor([0.3, -0.2], dtype=torch.float64))
        alpha = torch.softmax(model.modality_logits, 0)
        graph = sum(a * (0.3 * _dense_topk_graph(z, 5) + 0.7 * initial_graph(planted, m, 5).to_dense().double())
                    for a, (m, z) in zip(alpha, model.modality_item_emb().items()))
        h = graph @ (graph @ model.item_embedding.weight)
        adj = normalized_adjacency(planted).to_dense().double()
        ego = torch.cat([model.user_embedding.weight, model.item_embedding.weight])
        cf = (ego + adj @ ego + adj @ (adj @ ego)) / 3
        user_emb, item_emb = model()
    assert torch.allclose(user_emb, cf[: planted.n_users], atol=1e-10)
    assert torch.allclose(item_emb, cf[planted.n_users:] + F.normalize(h, dim=1), atol=1e-10)


def test_lattice_initial_graph_is_similarity_weighted_and_normalised(planted):
    dense = initial_graph(planted, "text", 4).to_dense().double()
    assert ((dense > 0).sum(1) <= 4).all() and (dense.diagonal() > 0).all()
    x = F.normalize(torch.from_numpy(planted.features["text"]).double(), dim=1)
    rows, cols = dense.nonzero(as_tuple=True)
    raw = (x[rows] * x[cols]).sum(1)
    degree = torch.zeros(planted.n_items, dtype=torch.float64).index_add_(0, rows, raw)
    assert torch.allclose(dense[rows, cols], raw / (degree[rows] * degree[cols]).sqrt(), atol=1e-6)


def test_lattice_learned_graph_gets_gradient_only_through_the_learned_part(planted, make_model, make_batch):
    model = make_model("lattice", planted, lambda_coeff=1.0).train()
    batch = make_batch(planted, 32, torch.Generator().manual_seed(0))
    user_emb, item_emb = model()
    model.rec_loss(batch, user_emb, item_emb).backward()
    assert all(p.grad is None or not p.grad.any() for p in model.projections.parameters())
    assert model.modality_logits.grad.abs().sum() > 0  # α still weights the initial graphs


def test_lattice_epoch_refresh_keeps_neighbours_within_an_epoch(planted, make_model):
    eager, lazy = (make_model("lattice", planted, knn_refresh=r) for r in ("forward", "epoch"))
    for model in (eager, lazy):
        model.train()
        model.epoch_start(0)
    assert all(torch.equal(a, b) for a, b in zip(eager(), lazy()))  # fresh neighbours: the same graph
    before = lazy.neighbours_0.clone()
    weight = torch.randn_like(eager.projections[0].weight)
    with torch.no_grad():
        for model in (eager, lazy):
            model.projections[0].weight.copy_(weight)
    out_eager, out_lazy = eager()[1], lazy()[1]
    assert torch.equal(lazy.neighbours_0, before) and not torch.equal(eager.neighbours_0, before)
    assert not torch.allclose(out_eager, out_lazy)
    lazy.epoch_start(1)
    assert torch.equal(lazy()[1], out_eager)
    with pytest.raises(ConfigError, match="knn_refresh"):
        from tests.models.conftest import build_model
        build_model("lattice", planted, knn_refresh="batch")


def test_dragon_matches_a_dense_reference(planted, make_model):
    model = make_model("dragon", planted, embedding_size=8, user_k=5).double().eval()
    with torch.no_grad():
        model.user_attention.normal_()
        adj = normalized_adjacency(planted).to_dense().double()
        blocks = []
        for p, encoder, (_, x) in zip(model.preferences, model.encoders, model.features.items()):
            e = F.normalize(torch.cat([p, encoder(x)]), dim=1)
            blocks.append(e + adj @ e + adj @ (adj @ e))
        alpha = torch.softmax(model.user_attention, 1)
        users = torch.cat([b[: planted.n_users] * alpha[:, m:m + 1] for m, b in enumerate(blocks)], 1)
        items = torch.cat([b[planted.n_users:] for b in blocks], 1)
        counts = cooccurrence_graph(planted.train.users, planted.train.items, planted.n_users, planted.n_items, 5)
        user_graph = torch.from_numpy(softmax_rows(counts).toarray())
        item_graph = torch.from_numpy(mixed_item_graph(planted, 10, default_mix(["image", "text"])).toarray())
        user_emb, item_emb = model()
        views = model.modality_item_emb()
    assert user_emb.shape == (planted.n_users, 16) and item_emb.shape == (planted.n_items, 16)
    assert torch.allclose(user_emb, users + user_graph @ users, atol=1e-6)
    assert torch.allclose(item_emb, items + item_graph @ items, atol=1e-6)
    assert torch.allclose(torch.cat([views["image"], views["text"]], 1), items, atol=1e-12)


def test_dragon_user_graph_rows_are_softmax_weights(planted, make_model):
    model = make_model("dragon", planted)
    rows = model.user_graph.matrix().to_dense().sum(1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-6)  # every planted user has co-users
    assert ((model.user_graph.matrix().to_dense() > 0).sum(1) <= 40).all()


@pytest.mark.parametrize("name", ["dragon", "lattice"])
@pytest.mark.parametrize("modalities", [{"image": 12}, {"image": 12, "text": 6, "audio": 5}])
def test_any_number_of_modalities(name, modalities, make_model, fit):
    ds = planted_dataset(n_users=60, n_items=40, seed=2, modalities=modalities)
    model = make_model(name, ds)
    assert set(model.modality_item_emb()) == set(modalities)
    losses = fit(model, ds, steps=10, batch_size=64)
    assert np.isfinite(losses).all()
    user_emb, item_emb = model()
    width = 64 * len(modalities) if name == "dragon" else 64
    assert user_emb.shape == (60, width) and item_emb.shape == (40, width)
