"""Adding a backbone or a denoiser is its own code plus one registry line (docs/design.md, "Registries").

A toy backbone and a toy denoiser are defined here; each fixture registers one
with a single ``Entry`` line (removed again after the test). The existing
contract suites then run unchanged on them: the backbone suite
(``tests/models/test_backbones.py``, parametrised from ``MODELS`` at import,
so its check functions are called here on the toy name) and the denoiser
suite's checks (``tests/denoise/test_contract.py``), including a one-epoch
``mmdenoise.train`` of the two toys together. What the entries declare
(needs features, ablation variants, an ID-only model) is then read where it
matters, with nothing else touched.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

import tests.denoise.test_contract as denoiser_suite
import tests.models.test_backbones as backbone_suite
from mmdenoise.api import build, model_task, resolve_config
from mmdenoise.catalog import rows
from mmdenoise.config import Range, setting
from mmdenoise.data import read_mmrec
from mmdenoise.data.synth import generate
from mmdenoise.denoise import DENOISERS, Denoiser
from mmdenoise.denoise.base import InteractionRecord
from mmdenoise.errors import ConfigError
from mmdenoise.experiments.study import ablation_variants
from mmdenoise.losses import bpr_loss
from mmdenoise.models import MODELS, Backbone
from mmdenoise.registry import Entry
from tests.models.conftest import build_model, fit_bpr, random_batch, recall_at_k
from tests.planted import planted_dataset


# ------------------------------------------------------------ a toy backbone
@dataclass
class ToyMFConfig:
    """embedding_size: d."""

    embedding_size: int = setting(32, Range(min=1))


class ToyMF(Backbone):
    """User and item tables [U, d], [I, d] scored by the dot product (the base class's BPR, no regulariser)."""

    def __init__(self, n_users: int, n_items: int, embedding_size: int):
        super().__init__()
        self.users = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_users, embedding_size)))
        self.items = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_items, embedding_size)))

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.users, self.items


def build_toy_mf(dataset, config: ToyMFConfig) -> ToyMF:
    return ToyMF(dataset.n_users, dataset.n_items, config.embedding_size)


# ------------------------------------------------------------ a toy denoiser
@dataclass
class ToyScaledConfig:
    """weight: the factor on the BPR term."""

    weight: float = setting(1.0, Range(above=0))


class ToyScaled(Denoiser):
    """weight · BPR; judges each positive by its detached σ(s_ui) when last seen."""

    def __init__(self, backbone: Backbone, n_interactions: int, weight: float):
        super().__init__(backbone)
        self.weight = weight
        self.judgement = InteractionRecord(n_interactions)

    def loss(self, batch, state):
        user_emb, item_emb = self.backbone()
        pos, neg = self.backbone.batch_scores(batch, user_emb, item_emb)
        self.judgement.update(batch.index, torch.sigmoid(pos))
        terms = self.loss_terms(self.weight * bpr_loss(pos, neg), batch, user_emb, item_emb)
        return sum(terms.values()), terms

    def interaction_scores(self):
        return self.judgement.scores()


def build_toy_scaled(dataset, backbone: Backbone, config: ToyScaledConfig) -> ToyScaled:
    return ToyScaled(backbone, len(dataset.train), config.weight)


#: the toy's ablation variants, declared by the denoiser as GUIDER and DA-MRS declare theirs
TOY_ABLATIONS = {"toy": (("denoiser", "toy"),),
                 "toy-half": (("denoiser", "toy"), ("denoiser_params.weight", 0.5))}


# ------------------------------------------------- one registry line each
@pytest.fixture
def toy_backbone(monkeypatch) -> str:
    monkeypatch.setitem(MODELS, "toy-mf", Entry(ToyMFConfig, build_toy_mf, "a toy ID-only model", "-"))
    return "toy-mf"


@pytest.fixture
def toy_denoiser(monkeypatch) -> str:
    monkeypatch.setitem(DENOISERS, "toy", Entry(ToyScaledConfig, build_toy_scaled, "a toy", "-",
                                                needs_features=True, ablations=TOY_ABLATIONS))
    return "toy"


@pytest.fixture(scope="module")
def planted():
    return planted_dataset(n_users=200, n_items=120, seed=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The ``tiny`` preset with image 32-d and text 16-d (as the denoiser suite's)."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    return read_mmrec(generate("tiny", seed=0, out=out, image_dim=32, text_dim=16))


# -------------------------------------------------------------------- tests
def test_a_toy_backbone_passes_the_backbone_contract(toy_backbone, planted, tiny, tmp_path):
    suite = backbone_suite
    suite.test_forward_shapes_and_scores(toy_backbone, planted, build_model)
    suite.test_modality_views(toy_backbone, planted, build_model)
    suite.test_to_dtype_and_meta_move_everything(toy_backbone, planted, build_model)
    suite.test_deepcopy_and_state_dict_round_trip(toy_backbone, planted, build_model)
    suite.test_gradients_reach_every_parameter(toy_backbone, planted, build_model, random_batch)
    suite.test_deterministic_under_seed(toy_backbone, planted, build_model)
    suite.test_short_bpr_run_beats_popularity(toy_backbone, planted, build_model, fit_bpr, recall_at_k)
    suite.test_one_epoch_smoke_on_tiny_preset(toy_backbone, tiny, tmp_path)


def test_a_toy_denoiser_passes_the_denoiser_contract_on_both_kinds_of_backbone(toy_backbone, toy_denoiser, tiny,
                                                                                tmp_path):
    suite = denoiser_suite
    for model in (toy_backbone, "vbpr"):
        suite.check_loss_parts(tiny, *suite.build_pair(tiny, model, toy_denoiser))
        assert suite.check_judgement(tiny, suite.build_pair(tiny, model, toy_denoiser)[1]) is not None
        suite.check_round_trip(tiny, model, toy_denoiser)
        suite.check_trainer_epoch(tiny, model, toy_denoiser, tmp_path / model)  # 1 epoch of mmdenoise.train


def test_what_the_toy_entries_declare_is_read_where_it_matters(toy_backbone, toy_denoiser):
    # needs_features: refused once, where the run builds, naming the denoiser and the dataset
    bare = planted_dataset(n_users=20, n_items=40, modalities={})
    build(bare, resolve_config({"model": toy_backbone}))
    with pytest.raises(ConfigError, match=f"denoiser 'toy' needs item features; dataset {bare.name!r} has no"):
        build(bare, resolve_config({"model": toy_backbone, "denoiser": toy_denoiser}))
    # ablations: the study runs what the denoiser declares, beside none
    assert ablation_variants(toy_denoiser) == {"none": [("denoiser", "none")], "toy": [("denoiser", "toy")],
                                               "toy-half": [("denoiser", "toy"), ("denoiser_params.weight", 0.5)]}
    # an ID-only model that trains: a general model, and a teacher GUIDER accepts
    assert model_task(toy_backbone) == "general"
    config = resolve_config({"model": "mf", "denoiser": "guider", "denoiser_params": {"teacher": toy_backbone}})
    assert config.denoiser_params["teacher"] == toy_backbone
    # listed with its capability
    assert {"name": "toy", "about": "a toy", "features": "yes", "paper": "-"} in rows("denoisers")
    assert any(row["name"] == toy_backbone and row["features"] == "no" for row in rows("models"))


def test_a_malformed_entry_fails_when_it_is_made():
    with pytest.raises(TypeError, match="config_cls must be a dataclass"):
        Entry(dict, build_toy_mf)
    with pytest.raises(TypeError, match="task must be one of general, sequential"):
        Entry(ToyMFConfig, build_toy_mf, task="session")
    with pytest.raises(TypeError, match=r"ablations\['x'\] must be \(path, value\) pairs"):
        Entry(ToyScaledConfig, build_toy_scaled, ablations={"x": ("denoiser", "toy")})
