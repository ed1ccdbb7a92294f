"""Loss functions: pure functions of scores, with shapes in each docstring."""
from .ranking import bpr_loss, l2_regularization

__all__ = ["bpr_loss", "l2_regularization"]
