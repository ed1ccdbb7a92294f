"""Training: the one loop for every backbone × denoiser, checkpoints and run records.

(``mmdenoise.training``; ``mmdenoise.train`` is the training function of the API.)
"""
from .trainer import Trainer, TrainResult, resolve_device

__all__ = ["Trainer", "TrainResult", "resolve_device"]
