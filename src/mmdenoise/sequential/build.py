"""Constructors behind ``SEQUENTIAL_MODELS``: Dataset features + SequenceView + config → model."""
from __future__ import annotations

import torch

from ..data.dataset import Dataset
from ..errors import DataError
from .config import (BaseConfig, ComiRecSAConfig, DemureConfig, EncoderConfig, GRU4RecConfig, PopularityConfig,
                     YoutubeDNNConfig)
from .demure import Demure
from .encoders import ModalityEncoder, standardise
from .models import AttentionBase, ComiRecSA, GRU4Rec, SequentialPopularity, YoutubeDNN
from .view import SequenceView


def modality_encoder(dataset: Dataset, config: EncoderConfig) -> ModalityEncoder:
    """The shared encoder over the dataset's modalities, each standardised per column."""
    if not dataset.features:
        raise DataError("sequential models read item content, but the dataset has no modality",
                        path=dataset.path or dataset.name, field="features")
    features = {m: torch.from_numpy(standardise(x)) for m, x in dataset.features.items()}
    return ModalityEncoder(features, config.dim, id_embedding=config.id_embedding)


def build_model(name: str, dataset: Dataset, view: SequenceView, config) -> torch.nn.Module:
    """The model ``name`` under ``config`` (parameters drawn from torch's current RNG state)."""
    if isinstance(config, PopularityConfig):
        return SequentialPopularity(torch.from_numpy(view.train_popularity))
    encoder = modality_encoder(dataset, config)
    if isinstance(config, DemureConfig):
        base = AttentionBase(encoder, view.max_len, positional=config.positional)
        return Demure(base, torch.from_numpy(view.seen_keys), view.n_items, gamma_i=config.gamma_i,
                      gamma_m=config.gamma_m, n_views=config.n_views, lambda_aug=config.lambda_aug,
                      lambda_cont=config.lambda_cont, interest=config.interest, similarity=config.similarity,
                      temperature=config.temperature, pool_size=config.pool_size,
                      warmup_epochs=config.warmup_epochs)
    if isinstance(config, BaseConfig):
        return AttentionBase(encoder, view.max_len, positional=config.positional)
    if isinstance(config, YoutubeDNNConfig):
        return YoutubeDNN(encoder)
    if isinstance(config, GRU4RecConfig):
        return GRU4Rec(encoder)
    if isinstance(config, ComiRecSAConfig):
        return ComiRecSA(encoder, view.max_len, n_interests=config.n_interests)
    raise TypeError(f"no sequential model for config {type(config).__name__} ({name})")
