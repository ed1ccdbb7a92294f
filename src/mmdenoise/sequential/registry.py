"""The sequential task's part of a run: its models (``SEQUENTIAL_MODELS``), how a raw config becomes a
resolved one and a model, and what a sequential run adds to ``result.json``.

``mmdenoise.api`` runs both tasks through one flow; this module is what it
asks of the sequential one (the general task's counterparts are in ``api``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..config import from_dict, resolve_run_config, short
from ..data import Dataset
from ..data.seqsynth import read_seq_truth
from ..errors import ConfigError
from ..registry import Entry, check_dataset, lookup
from ..training import record
from ..training.trainer import limit_threads
from . import build
from .config import (BaseConfig, ComiRecSAConfig, DemureConfig, GRU4RecConfig, PopularityConfig,
                     SequentialRunConfig, YoutubeDNNConfig)
from .interest import INTEREST_KINDS
from .localisation import localisation_per_user, localisation_summary
from .task import SequentialTask
from .view import UNUSED_USER, SequenceView

_DEMURE = "Yao et al. (Demure)"
#: name -> Entry(config class, build(dataset, view, config) -> model, about, paper, capabilities,
#: task="sequential").
#: Names are disjoint from ``models.MODELS``: the model name alone decides the task
#: (sequential popularity is ``seq-pop``; general ``pop`` ranks by training-split counts).
SEQUENTIAL_MODELS: dict[str, Entry] = {
    "seq-pop": Entry(PopularityConfig, build.build_popularity, "the items most frequent in training users' sequences",
                     "-", task="sequential"),
    "youtubednn": Entry(YoutubeDNNConfig, build.build_youtubednn, "mean pooling of the history, then an FFN",
                        "Covington et al., RecSys 2016", needs_features=True, task="sequential"),
    "gru4rec": Entry(GRU4RecConfig, build.build_gru4rec, "the last GRU state over the history",
                     "Hidasi et al., ICLR 2016", needs_features=True, task="sequential"),
    "base": Entry(BaseConfig, build.build_base, "Demure's base model: modality- and item-wise self-attention",
                  _DEMURE, needs_features=True, task="sequential"),
    "comirec-sa": Entry(ComiRecSAConfig, build.build_comirec_sa, "four self-attentive interests per user",
                        "Cen et al., KDD 2020", needs_features=True, task="sequential"),
    "demure": Entry(DemureConfig, build.build_demure,
                    "base model + interest-located augmentation + contrastive loss (denoising)", _DEMURE,
                    needs_features=True, task="sequential"),
}
#: names that run folders written before 0.1.0 may hold
LEGACY_NAMES = {"pop": "seq-pop"}


def _model_params(raw: dict) -> dict[str, type]:
    """The config class of ``model_params`` for the model ``raw`` names (an old folder's name renamed)."""
    model = raw.get("model", SequentialRunConfig.model)
    if not isinstance(model, str):
        raise ConfigError(f"model must be a name, got {short(model)}")
    model = raw["model"] = LEGACY_NAMES.get(model, model)
    return {"model_params": lookup(SEQUENTIAL_MODELS, model, "sequential model").config_cls}


def resolve_sequential_config(data: Mapping[str, Any] | SequentialRunConfig | None = None,
                              overrides: Sequence[str] = ()) -> SequentialRunConfig:
    """Validate a raw mapping (+ ``key=value`` overrides) into a fully resolved SequentialRunConfig."""
    config = resolve_run_config(SequentialRunConfig, data, overrides, _model_params)
    if config.train.feature_precision != "float32":
        raise ConfigError(f"train.feature_precision={config.train.feature_precision}: the sequential models "
                          "keep their item features in float32; use float32")
    return config


def make_view(dataset: Dataset, config: SequentialRunConfig) -> SequenceView:
    """The run's sequence view (same dataset and ``sequence`` settings → the same user split)."""
    seq = config.sequence
    return SequenceView.from_dataset(dataset, max_len=seq.max_len, history_ratio=seq.history_ratio,
                                     user_ratios=tuple(seq.user_ratios), seed=seq.split_seed)


def build_sequential(dataset: Dataset, view: SequenceView, config: SequentialRunConfig) -> torch.nn.Module:
    """The configured model, its parameters drawn under ``config.seed``; a ConfigError first when its
    entry's capabilities rule out ``dataset`` (``registry.check_dataset``)."""
    entry = lookup(SEQUENTIAL_MODELS, config.model, "sequential model")
    check_dataset(entry, "sequential model", config.model, dataset)
    limit_threads(config.train.threads)
    torch.manual_seed(config.seed)
    return entry.build(dataset, view, from_dict(entry.config_cls, config.model_params))


def make_task(dataset: Dataset, config: SequentialRunConfig) -> SequentialTask:
    """The trainer's task of the run: its view and its freshly built model."""
    view = make_view(dataset, config)
    return SequentialTask(dataset, view, build_sequential(dataset, view, config), config.sequence.n_negatives)


def folder_name(config: SequentialRunConfig) -> str:
    return f"{Path(config.dataset).name}-seq-{config.model}-s{config.seed}"


def describe(config: SequentialRunConfig) -> str:
    return f"{config.model} (sequential)"


def identity(config: SequentialRunConfig, task: SequentialTask) -> dict[str, Any]:
    """result.json's fields that say what ran: the task, the model, no denoiser, the seed, the view's sizes."""
    return {"task": "sequential", "model": config.model, "denoiser": "none", "seed": config.seed,
            "sequence": task.view.summary()}


#: positions a user's interest scores name (item precision@k of the localisation)
LOCALISATION_K = 3


def findings(task: SequentialTask, run_dir: Path) -> dict[str, Any]:
    """On a dataset with planted points of interest: how well each interest score finds them (means in
    result.json), and per test user, for the interest score the model uses itself (Demure's
    ``interest``, else gradient × input), item precision@3 minus its chance (per_user.npz's
    ``localisation_users`` and ``localisation_gain``, which the claims benchmark pairs like a metric)."""
    data, model = task.dataset, task.model
    truth = read_seq_truth(data.path) if data.path is not None else None
    if truth is None or not hasattr(getattr(model, "base", model), "encoder"):
        return {}
    own = getattr(model, "interest", "grad_input")
    summary = {}
    for kind in INTEREST_KINDS:
        found = localisation_per_user(model, task.view, truth, "test", LOCALISATION_K, kind)
        summary[kind] = localisation_summary(found, len(truth.modalities), LOCALISATION_K, kind)
        if kind == own:
            record.add_per_user(run_dir, localisation_users=found["users"],
                                localisation_gain=found["item_precision"] - found["item_chance"])
    return {"localisation": summary}


def check_users(task: SequentialTask, users: np.ndarray) -> None:
    """A ConfigError for a user without interactions: a sequential model recommends after a history."""
    unused = users[task.view.user_split[users] == UNUSED_USER]
    if unused.size:
        raise ConfigError(f"user {int(unused[0])} has no interactions: a sequential model recommends after a "
                          "user's history")
