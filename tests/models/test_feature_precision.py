"""``train.feature_precision``: item features stored in bfloat16, first projections in bfloat16.

Not exact, so the checks are: float32 is the model as built (bit for bit); bfloat16 stores every
feature-projecting backbone's features in bfloat16, gives outputs within bfloat16's rounding of the float32
ones, trains every parameter and still learns the planted clusters; models without item features refuse
the setting by name.
"""
import numpy as np
import pytest
import torch
from torch import nn

from mmdenoise.api import build, resolve_config, train
from mmdenoise.config import FEATURE_PRECISIONS, TrainConfig
from mmdenoise.errors import ConfigError
from mmdenoise.models import MODELS
from mmdenoise.models.features import FeatureLinear, ModalityFeatures, set_feature_precision

PROJECTING = [name for name, entry in MODELS.items() if entry.needs_features]


def test_feature_linear_is_linear_in_float32_and_casts_lower_precision_inputs():
    torch.manual_seed(0)
    layer, reference = FeatureLinear(48, 8), nn.Linear(48, 8)
    reference.load_state_dict(layer.state_dict())  # the same parameters and state_dict keys
    x = torch.randn(30, 48)
    assert torch.equal(layer(x), reference(x))
    low = layer(x.to(torch.bfloat16))
    assert low.dtype == torch.float32
    # the product of bfloat16-rounded inputs, accumulated and returned in float32: bfloat16 keeps 8 bits
    expected = x.to(torch.bfloat16).float() @ layer.weight.to(torch.bfloat16).float().T + \
        layer.bias.to(torch.bfloat16).float()
    assert torch.allclose(low, expected, rtol=2e-2, atol=2e-2)
    low.sum().backward()  # the gradient reaches the float32 weight, in float32
    assert layer.weight.grad.dtype == torch.float32
    assert torch.allclose(layer.weight.grad, x.to(torch.bfloat16).float().sum(0).expand(8, -1), rtol=2e-2)


@pytest.mark.parametrize("name", PROJECTING)
def test_bfloat16_features_close_to_float32_and_every_parameter_trains(name, planted, make_model, make_batch):
    full, low = make_model(name, planted), make_model(name, planted)
    set_feature_precision(low, "bfloat16", name)
    holders = [m for m in low.modules() if isinstance(m, ModalityFeatures)]
    assert holders and all(x.dtype == torch.bfloat16 for h in holders for _, x in h.items())
    assert {k for k, _ in low.state_dict().items()} == {k for k, _ in full.state_dict().items()}
    with torch.no_grad():
        for a, b in zip(full(), low()):
            assert b.dtype == torch.float32
            scale = a.abs().max().item()
            assert (a - b).abs().max().item() <= 0.05 * scale + 1e-4, name
    batch = make_batch(planted, 64, torch.Generator().manual_seed(0))
    user_emb, item_emb = low()
    loss = low.rec_loss(batch, user_emb, item_emb) + low.extra_loss(batch, user_emb, item_emb)
    loss.backward()
    missing = [n for n, p in low.named_parameters() if p.requires_grad and p.grad is None]
    user_emb, item_emb = full()
    (full.rec_loss(batch, user_emb, item_emb) + full.extra_loss(batch, user_emb, item_emb)).backward()
    assert missing == [n for n, p in full.named_parameters() if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("name", ["vbpr", "dragon"])
def test_a_bfloat16_model_still_learns_the_planted_clusters(name, planted, make_model, fit, recall):
    popularity = recall(make_model("pop", planted), planted)
    model = make_model(name, planted)
    set_feature_precision(model, "bfloat16", name)
    losses = fit(model, planted, steps=100)
    assert np.isfinite(losses).all()
    assert recall(model, planted) > popularity + 0.1


def test_float32_leaves_the_model_as_built(planted, make_model):
    model = make_model("vbpr", planted)
    before = {k: v.clone() for k, v in model.features.items()}
    set_feature_precision(model, "float32", "vbpr")
    assert all(torch.equal(before[k], v) and v.dtype == torch.float32 for k, v in model.features.items())


@pytest.mark.parametrize("name", ["mf", "lightgcn"])
def test_models_without_features_refuse_bfloat16_by_name(name, planted):
    config = resolve_config({"model": name}, ["train.feature_precision=bfloat16"])
    with pytest.raises(ConfigError, match=rf"train.feature_precision=bfloat16: {name} projects no item features"):
        build(planted, config)


def test_the_setting_takes_exactly_the_known_precisions():
    assert TrainConfig().feature_precision == "float32"
    assert [getattr(torch, name) for name in FEATURE_PRECISIONS] == [torch.float32, torch.bfloat16]
    for precision in FEATURE_PRECISIONS:
        assert resolve_config({"model": "vbpr"}, [f"train.feature_precision={precision}"]).train \
            .feature_precision == precision
    with pytest.raises(ConfigError, match="feature_precision"):
        resolve_config({"model": "vbpr"}, ["train.feature_precision=float16"])


def test_a_bfloat16_run_records_the_setting_and_writes_nothing_when_refused(planted, tmp_path):
    run = train(planted, model="vbpr", out=tmp_path / "low",
                overrides=["train.epochs=2", "train.progress=false", "train.feature_precision=bfloat16"])
    assert run.config.train.feature_precision == "bfloat16"
    assert "feature_precision: bfloat16" in (tmp_path / "low" / "config.yaml").read_text()
    assert run.backbone.features["image"].dtype == torch.bfloat16
    assert 0.0 <= run.test["recall@20"] <= 1.0
    with pytest.raises(ConfigError, match="lightgcn projects no item features"):
        train(planted, model="lightgcn", out=tmp_path / "refused",
              overrides=["train.epochs=1", "train.progress=false", "train.feature_precision=bfloat16"])
    assert not (tmp_path / "refused").exists()
