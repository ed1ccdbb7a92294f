"""The optimiser and one optimiser step, shared by every loop that trains something: the trainer's
(both tasks) and the loops denoisers run on their own inner models (GUIDER's teacher).

It imports nothing of mmdenoise but its errors, so a denoiser can use it without depending on the
trainer.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import torch

from ..errors import TrainingError


class NonFiniteLoss(TrainingError):
    """A batch's loss is NaN or inf; the message names where and the offending terms.

    The trainer re-raises it as a TrainingError that also says what of the run
    was kept on disk.
    """


def adam(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam over ``params``, fused where torch has the kernel (every parameter a float on CPU or CUDA).

    Fused Adam makes one pass over each parameter instead of one per arithmetic step: 2.6× faster
    on 3.3M parameters (one thread; MF's step on book-crossing 54 → 28 ms). Its rounding can differ
    from the unfused Adam's by one unit in the last place. The flag is part of the optimiser's saved
    state, so a run resumed from an unfused checkpoint continues unfused.
    """
    params = list(params)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


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
