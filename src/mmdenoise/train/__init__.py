"""Training: the one loop for every backbone × denoiser, checkpoints and run records."""
from .trainer import Trainer, TrainResult, resolve_device

__all__ = ["Trainer", "TrainResult", "resolve_device"]
