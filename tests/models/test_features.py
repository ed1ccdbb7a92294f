"""Item features as model state: a modality that repeats rows (a category embedded per category) is
projected once per distinct row, with the values and gradients of projecting every row."""
import pytest
import torch
from torch import nn

from mmdenoise.models import MODELS
from mmdenoise.models.features import DISTINCT_SHARE, ModalityFeatures, distinct_rows


def _categorical(n_items=60, n_categories=7, dim=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(n_categories, dim, generator=g)
    return table[torch.randint(n_categories, (n_items,), generator=g)]


def test_distinct_rows_of_repeated_rows_and_none_for_unique_ones():
    x = _categorical()
    distinct, index = distinct_rows(x)
    assert distinct.shape[0] == torch.unique(x, dim=0).shape[0] <= 7
    assert torch.equal(distinct[index], x)
    assert distinct_rows(torch.randn(60, 12)) is None
    half = torch.cat([torch.randn(30, 12)] * 2)  # 30 distinct of 60: exactly at the share
    assert DISTINCT_SHARE == 0.5 and distinct_rows(half)[0].shape[0] == 30
    assert distinct_rows(torch.cat([half, torch.randn(1, 12)])) is None


def test_map_runs_each_fn_on_the_distinct_rows_with_the_same_values_and_gradients():
    features = ModalityFeatures({"category": _categorical(), "text": torch.randn(60, 5)})
    torch.manual_seed(0)
    layers = [nn.Linear(12, 4), nn.Linear(5, 4)]
    seen = []
    for layer in layers:
        layer.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    out = features.map(layers)
    assert list(out) == ["category", "text"] and seen[1] == 60 and seen[0] <= 7
    expected = {"category": layers[0](features["category"]), "text": layers[1](features["text"])}
    for name in out:
        assert torch.allclose(out[name], expected[name], atol=1e-6)
    weights = torch.randn(60, 4)
    grads = [torch.autograd.grad((o * weights).sum(), layers[0].weight)[0]
             for o in (out["category"], expected["category"])]
    assert torch.allclose(*grads, atol=1e-5)
    with pytest.raises(ValueError):
        features.map(layers[:1])  # one fn per modality
    features.to_precision(torch.bfloat16)
    assert features.distinct_0.dtype == features["category"].dtype == torch.bfloat16 and features.distinct_1 is None


@pytest.mark.parametrize("name", [n for n, entry in MODELS.items() if entry.needs_features])
def test_backbones_give_the_same_item_views_with_repeated_rows_shared(name, planted, make_model, monkeypatch):
    """Every feature-projecting backbone's outputs are those of projecting every row."""
    import mmdenoise.models.features as module
    monkeypatch.setattr(module, "DISTINCT_SHARE", 1.0)  # every modality takes the distinct-rows path
    torch.manual_seed(0)
    shared = make_model(name, planted)
    monkeypatch.setattr(module, "DISTINCT_SHARE", 0.0)  # none does
    torch.manual_seed(0)
    every = make_model(name, planted)
    assert all(getattr(shared.features, f"distinct_{k}") is not None for k in range(len(shared.features)))
    for a, b in zip(shared(), every()):
        assert torch.allclose(a, b, atol=1e-5)
