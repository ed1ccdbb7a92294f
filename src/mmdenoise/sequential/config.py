"""Typed configuration of a sequential run and the ``SEQUENTIAL_MODELS`` registry.

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
ConfigErrors listing the valid ones.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..config import SEED_RANGE, Check, Entry, OneOf, Range, TrainConfig, from_dict, lookup, parse_override, setting, short, to_dict
from ..errors import ConfigError
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
    n_views: int = setting(1, Range(min=1))
    lambda_aug: float = setting(0.0, Range(min=0))
    lambda_cont: float = setting(0.1, Range(min=0))
    interest: str = setting("grad_input", OneOf(*INTEREST_KINDS))
    similarity: str = setting("dot", OneOf("dot", "cosine"))
    temperature: float = setting(1.0, Range(above=0))
    pool_size: int = setting(256, Range(min=1))
    warmup_epochs: int = setting(0, Range(min=0))


@dataclass
class PopularityConfig:
    """No settings: items ranked by their count in the training users' sequences."""


def _build(name: str):
    def build(dataset, view, config):
        from .build import build_model
        return build_model(name, dataset, view, config)
    build.__name__ = f"build_{name.replace('-', '_')}"
    return build


#: name -> Entry(config class, build(dataset, view, config) -> model)
#: Names are disjoint from ``models.MODELS``: the model name alone decides the task
#: (sequential popularity is ``seq-pop``; general ``pop`` ranks by training-split counts).
SEQUENTIAL_MODELS: dict[str, Entry] = {
    "seq-pop": Entry(PopularityConfig, _build("seq-pop"), "the items most frequent in training users' sequences",
                     "-"),
    "youtubednn": Entry(YoutubeDNNConfig, _build("youtubednn"), "mean pooling of the history, then an FFN",
                        "Covington et al., RecSys 2016", True),
    "gru4rec": Entry(GRU4RecConfig, _build("gru4rec"), "the last GRU state over the history",
                     "Hidasi et al., ICLR 2016", True),
    "base": Entry(BaseConfig, _build("base"), "Demure's base model: modality- and item-wise self-attention",
                  "Yao et al. (Demure)", True),
    "comirec-sa": Entry(ComiRecSAConfig, _build("comirec-sa"), "four self-attentive interests per user",
                        "Cen et al., KDD 2020", True),
    "demure": Entry(DemureConfig, _build("demure"),
                    "base model + interest-located augmentation + contrastive loss (denoising)",
                    "Yao et al. (Demure)", True),
}
#: names that run folders written before 0.1.0 may hold
LEGACY_NAMES = {"pop": "seq-pop"}


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

    task: str = "sequential"
    dataset: str = "ml-100k"
    model: str = "base"
    seed: int = setting(0, SEED_RANGE)
    train: TrainConfig = field(default_factory=sequential_train_defaults)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    model_params: dict = field(default_factory=dict)


_TOP = ("task", "dataset", "model", "seed")
_SECTIONS = {"train": TrainConfig, "sequence": SequenceConfig}


def resolve_sequential_config(data: Mapping[str, Any] | SequentialRunConfig | None = None,
                              overrides: Sequence[str] = ()) -> SequentialRunConfig:
    """Validate a raw mapping (+ ``key=value`` overrides) into a fully resolved SequentialRunConfig."""
    raw = to_dict(data) if isinstance(data, SequentialRunConfig) else dict(data or {})
    raw = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in raw.items()}
    parsed = [(text, *parse_override(text)) for text in overrides]
    for text, path, value in parsed:          # top-level first: the model decides its fields
        if len(path) == 1 and path[0] in _TOP:
            raw[path[0]] = value
    model = raw.get("model", SequentialRunConfig.model)
    if not isinstance(model, str):
        raise ConfigError(f"model must be a name, got {short(model)}")
    model = raw["model"] = LEGACY_NAMES.get(model, model)
    model_cls = lookup(SEQUENTIAL_MODELS, model, "sequential model").config_cls
    fields = {"train": [f.name for f in dataclasses.fields(TrainConfig)],
              "sequence": [f.name for f in dataclasses.fields(SequenceConfig)],
              "model_params": [f.name for f in dataclasses.fields(model_cls)]}
    for text, path, value in parsed:
        if len(path) == 1 and path[0] in _TOP:
            continue
        if len(path) == 1:
            owners = [s for s, names in fields.items() if path[0] in names]
            if len(owners) != 1:
                problem = f"is ambiguous between {', '.join(owners)}" if owners else "is not a known key"
                valid = list(_TOP) + [f"{s}.{n}" for s, names in fields.items() for n in names]
                raise ConfigError(f"override {short(text)}: {short(path[0])} {problem}; valid keys: {', '.join(valid)}")
            path = [owners[0], path[0]]
        section = "model_params" if path[0] == "model" else path[0]
        if len(path) != 2 or section not in fields:
            raise ConfigError(f"override {short(text)}: unknown key; use one of {list(_TOP)} or "
                              f"{', '.join(fields)}.<field>")
        raw.setdefault(section, {})
        raw[section][path[1]] = value
    if raw.get("task", "sequential") != "sequential":
        raise ConfigError(f"task: a sequential config has task 'sequential', got {short(raw['task'])}")
    raw["train"] = {**to_dict(sequential_train_defaults()), **(raw.get("train") or {})}
    config = from_dict(SequentialRunConfig, raw, "config")
    config.model_params = to_dict(from_dict(model_cls, config.model_params, f"model_params ({model})"))
    return config
