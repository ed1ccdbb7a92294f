"""Demure and the sequential baselines: own data view and protocol, the shared evaluator (DESIGN §6.4).

- ``view``: time-ordered sequences, the user-level 8:1:1 split, padded windows;
- ``encoders``/``models``: the modality encoder (Eq. 1–3) and the base model,
  YoutubeDNN, GRU4Rec and ComiRec-SA on top of it, sampled softmax (Eq. 5–6);
- ``interest``/``augment``/``demure``: gradient interest scores (Eq. 7–8),
  augmentation (Eq. 9–13), contrastive and total loss (Eq. 14–15);
- ``trainer``/``api``: training and evaluation runs (``train_sequential``);
- ``localisation``: accuracy of the interest scores on planted data;
- ``study``: the γ_i/γ_m and J sensitivity (paper Tables 3–4).
"""
from .config import SEQUENTIAL_MODELS, SequentialRunConfig, resolve_sequential_config
from .view import PAD, SequenceView

__all__ = ["SEQUENTIAL_MODELS", "SequentialRunConfig", "resolve_sequential_config", "SequenceView", "PAD",
           "train_sequential", "localisation_accuracy", "sensitivity_study"]


def __getattr__(name: str):
    # the training pieces pull in the trainer; import them on first use
    if name == "train_sequential":
        from .api import train_sequential
        return train_sequential
    if name == "localisation_accuracy":
        from .localisation import localisation_accuracy
        return localisation_accuracy
    if name == "sensitivity_study":
        from .study import sensitivity_study
        return sensitivity_study
    raise AttributeError(f"module 'mmdenoise.sequential' has no attribute {name!r}")
