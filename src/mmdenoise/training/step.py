"""One optimiser step, shared by every loop that trains something: the trainer's (both tasks) and the
loops denoisers run on their own inner models (GUIDER's teacher).

It imports nothing of mmdenoise but its errors, so a denoiser can use it without depending on the
trainer.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..errors import TrainingError


class NonFiniteLoss(TrainingError):
    """A batch's loss is NaN or inf; the message names where and the offending terms.

    The trainer re-raises it as a TrainingError that also says what of the run
    was kept on disk.
    """


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor,
                   terms: Mapping[str, torch.Tensor] | None = None, *, where: str) -> None:
    """Check that ``loss`` (a scalar) is finite, then zero the gradients, backpropagate and step.

    terms: the named parts of ``loss``, named in the error when one is not finite.
    where: the place in training for the error, e.g. ``"epoch 3, batch 7"``.
    Raises NonFiniteLoss before anything is changed: the parameters keep the
    values of the last finite step.
    """
    if not torch.isfinite(loss):
        bad = [f"{name}={float(v.detach()):.4g}" for name, v in (terms or {}).items()
               if not torch.isfinite(v).all()]
        raise NonFiniteLoss(f"non-finite loss at {where}: loss term(s) {', '.join(bad) or 'total'}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
