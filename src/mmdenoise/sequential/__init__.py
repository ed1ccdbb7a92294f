"""Demure and the sequential baselines: own data view and protocol, the shared evaluator.

- ``view``: time-ordered sequences, the user-level 8:1:1 split, padded windows;
- ``encoders``/``models``: the modality encoder (Eq. 1–3) and the base model,
  YoutubeDNN, GRU4Rec and ComiRec-SA on top of it, sampled softmax (Eq. 5–6);
- ``interest``/``augment``/``demure``: gradient interest scores (Eq. 7–8),
  augmentation (Eq. 9–13), contrastive and total loss (Eq. 14–15);
- ``task``: the trainer's task (next-item batches, sampled softmax, ranking after a history);
- ``build``/``registry``: the models' constructors, ``SEQUENTIAL_MODELS``, config resolution and what
  a sequential run records (runs themselves: ``mmdenoise.api``; ``train_sequential`` is ``train``);
- ``localisation``: accuracy of the interest scores on planted data;
- ``study``: the γ_i/γ_m and J sensitivity (paper Tables 3–4).
"""
from .config import SequentialRunConfig
from .registry import SEQUENTIAL_MODELS, resolve_sequential_config
from .view import PAD, SequenceView

__all__ = ["SEQUENTIAL_MODELS", "SequentialRunConfig", "resolve_sequential_config", "SequenceView", "PAD",
           "train_sequential", "localisation_accuracy", "sensitivity_study"]


def __getattr__(name: str):
    # the runs module and the studies import this package: theirs are imported on first use
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
