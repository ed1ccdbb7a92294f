"""Loss functions: pure functions of scores, with shapes in each docstring."""
from .pointwise import bce_with_logits, pointwise_bce, reweighted_bce, truncated_bce
from .ranking import bpr_loss, bpr_per_pair, l2_regularization, truncated_bpr

__all__ = ["bce_with_logits", "bpr_loss", "bpr_per_pair", "l2_regularization", "pointwise_bce", "reweighted_bce",
           "truncated_bce", "truncated_bpr"]
