"""Constructors behind ``SEQUENTIAL_MODELS``: Dataset features + SequenceView + config → model.

Each takes ``(dataset, view, config)`` and draws its parameters from torch's
current RNG state; the registry entry pairs it with its config class.
"""
from __future__ import annotations

import torch

from ..data.dataset import Dataset
from .config import (BaseConfig, ComiRecSAConfig, DemureConfig, EncoderConfig, GRU4RecConfig, PopularityConfig,
                     YoutubeDNNConfig)
from .demure import Demure
from .encoders import ModalityEncoder, standardise
from .models import AttentionBase, ComiRecSA, GRU4Rec, SequentialPopularity, YoutubeDNN
from .view import SequenceView


def modality_encoder(dataset: Dataset, config: EncoderConfig) -> ModalityEncoder:
    """The shared encoder over the dataset's modalities, each standardised per column (the entries of the
    models that use it need item features: ``registry.check_dataset`` refuses a dataset without any)."""
    features = {m: torch.from_numpy(standardise(x)) for m, x in dataset.features.items()}
    return ModalityEncoder(features, config.dim, id_embedding=config.id_embedding)


def build_popularity(dataset: Dataset, view: SequenceView, config: PopularityConfig) -> SequentialPopularity:
    return SequentialPopularity(torch.from_numpy(view.train_popularity))


def build_youtubednn(dataset: Dataset, view: SequenceView, config: YoutubeDNNConfig) -> YoutubeDNN:
    return YoutubeDNN(modality_encoder(dataset, config))


def build_gru4rec(dataset: Dataset, view: SequenceView, config: GRU4RecConfig) -> GRU4Rec:
    return GRU4Rec(modality_encoder(dataset, config))


def build_base(dataset: Dataset, view: SequenceView, config: BaseConfig) -> AttentionBase:
    return AttentionBase(modality_encoder(dataset, config), view.max_len, positional=config.positional)


def build_comirec_sa(dataset: Dataset, view: SequenceView, config: ComiRecSAConfig) -> ComiRecSA:
    return ComiRecSA(modality_encoder(dataset, config), view.max_len, n_interests=config.n_interests)


def build_demure(dataset: Dataset, view: SequenceView, config: DemureConfig) -> Demure:
    return Demure(build_base(dataset, view, config), torch.from_numpy(view.seen_keys), view.n_items,
                  gamma_i=config.gamma_i, gamma_m=config.gamma_m, n_views=config.n_views,
                  lambda_aug=config.lambda_aug, lambda_cont=config.lambda_cont, interest=config.interest,
                  similarity=config.similarity, temperature=config.temperature, pool_size=config.pool_size,
                  warmup_epochs=config.warmup_epochs)
