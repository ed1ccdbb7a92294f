"""Typed configuration of a sequential run: the models' config classes and the run's sections.

YAML form (what every sequential run folder's ``config.yaml`` holds)::

    task: sequential
    dataset: ml-100k
    model: demure
    seed: 0
    train: {epochs: 200, batch_size: 1024, lr: 0.001, patience: 10, ...}
    sequence: {max_len: 20, history_ratio: 0.8, user_ratios: [0.8, 0.1, 0.1], split_seed: 0, n_negatives: 256}
    model_params: {dim: 64, gamma_i: 0.4, gamma_m: 0.2, n_views: 1, ...}

Overrides (``--set``) take dotted keys (``train.lr``, ``sequence.max_len``,
``model.gamma_i`` / ``model_params.gamma_i``) or bare keys owned by exactly
one section (``gamma_i``, ``max_len``). Unknown keys and names are
ConfigErrors listing the valid ones. ``sequential.registry`` names the models
and resolves a raw config with the one resolver of ``mmdenoise.config``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import SEED_RANGE, Check, OneOf, Range, TrainConfig, setting
from .interest import INTEREST_KINDS


# ------------------------------------------------------------ model configs
@dataclass
class EncoderConfig:
    """Shared by every sequential model: width d of the modality encoder and the user vector, and an
    optional learnt item-ID vector as one more modality (off in the paper: content only)."""

    dim: int = setting(64, Range(min=1))
    id_embedding: bool = False


@dataclass
class BaseConfig(EncoderConfig):
    """The attention base model (Eq. 1–6); ``positional`` adds learnt position embeddings."""

    positional: bool = False


@dataclass
class YoutubeDNNConfig(EncoderConfig):
    """Mean pooling + FFN."""


@dataclass
class GRU4RecConfig(EncoderConfig):
    """Last GRU state."""


@dataclass
class ComiRecSAConfig(EncoderConfig):
    """K self-attentive interests (ComiRec's default K = 4)."""

    n_interests: int = setting(4, Range(min=1))


@dataclass
class DemureConfig(BaseConfig):
    """Demure (Eq. 7–15). γ_i, γ_m: item- and modality-level augmentation rates (paper's best
    γ_i + γ_m = 0.6 with γ_m = 0.2); n_views: J pairs of views; lambda_aug, lambda_cont: λ₁, λ₂ of
    Eq. 15, not given in the paper: λ₂ = 0.1, and λ₁ = 0, chosen on ml-100k validation Recall@20
    pooled over three user splits (0.1984 vs 0.1883 at λ₁ = 1; docs/results/demure-ml100k.md):
    the positive view keeps the items the target's own gradient ranks highest, so L_ssm^aug
    trains on target-selected histories (2.9 nats against L_ssm's 4.3) that no test user has;
    interest: "grad_input" (gradient × activation, the
    default: Eq. 7–8's gradient average has an arbitrary sign per user, see ``interest``) or
    "grad" (Eq. 7–8 as printed); similarity/temperature: φ of Eq. 14 (dot, 1);
    pool_size: candidate pool of the replacements; warmup_epochs: plain L_ssm epochs first."""

    gamma_i: float = setting(0.4, Range(min=0, max=1))
    gamma_m: float = setting(0.2, Range(min=0, max=1))
    n_views: int = setting(1, Range(min=1), symbol="J")
    lambda_aug: float = setting(0.0, Range(min=0), symbol="λ₁")
    lambda_cont: float = setting(0.1, Range(min=0), symbol="λ₂")
    interest: str = setting("grad_input", OneOf(*INTEREST_KINDS))
    similarity: str = setting("dot", OneOf("dot", "cosine"))
    temperature: float = setting(1.0, Range(above=0))
    pool_size: int = setting(256, Range(min=1))
    warmup_epochs: int = setting(0, Range(min=0))


@dataclass
class PopularityConfig:
    """No settings: items ranked by their count in the training users' sequences."""


# -------------------------------------------------------------- run config
def _are_shares(ratios: list) -> bool:
    return len(ratios) == 3 and all(r >= 0 for r in ratios) and abs(sum(ratios) - 1) <= 1e-6


@dataclass
class SequenceConfig:
    """The sequence view and protocol (paper §4.1): max history length L, share of a held-out
    user's sequence used as history, user split shares and its seed (fixed across runs, so
    runs are paired), and the number of shared sampled-softmax negatives (Eq. 6)."""

    max_len: int = setting(20, Range(min=1))
    history_ratio: float = setting(0.8, Range(above=0, below=1))
    user_ratios: list[float] = setting(factory=lambda: [0.8, 0.1, 0.1], allowed=Check(
        _are_shares, "three non-negative shares (train, valid, test users) summing to 1"))
    split_seed: int = setting(0, SEED_RANGE)
    n_negatives: int = setting(256, Range(min=1))


def sequential_train_defaults() -> TrainConfig:
    """The trainer settings of a sequential run unless set: Adam, lr 1e-3 and batch 1,024 (the
    paper's; it uses lr 3e-3 on MovieLens and MIND), up to 200 epochs with early stopping after
    10 checks without a better validation Recall@20."""
    return TrainConfig(epochs=200, batch_size=1024, lr=1e-3, patience=10)


@dataclass
class SequentialRunConfig:
    """Everything that defines one sequential run."""

    task: str = setting("sequential", OneOf("sequential"))
    dataset: str = "ml-100k"
    model: str = "base"
    seed: int = setting(0, SEED_RANGE)
    train: TrainConfig = field(default_factory=sequential_train_defaults)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    model_params: dict = field(default_factory=dict)
