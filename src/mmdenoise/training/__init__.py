"""Training: the one loop for both tasks (``trainer``), its task protocol and the general task
(``general``), the optimiser step every loop shares (``step``), checkpoints and run records.

(``mmdenoise.training``; ``mmdenoise.train`` is the training function of the API.)
"""
from .step import NonFiniteLoss, optimizer_step
from .trainer import Task, Trainer, TrainResult, resolve_device

__all__ = ["Task", "Trainer", "TrainResult", "resolve_device", "optimizer_step", "NonFiniteLoss"]
