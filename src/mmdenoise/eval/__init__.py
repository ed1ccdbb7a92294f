"""Evaluation: full-ranking evaluator, metrics, significance tests. Knows nothing about models."""
from .detection import detection_metrics, precision_at_count, roc_auc
from .evaluator import DEFAULT_KS, EvalResult, Evaluator, ScoreBlocks, mask_matrix, masked_top_k, top_k_items
from .metrics import METRICS, ranking_metrics
from .significance import Comparison, align, compare, fdr_adjusted, mean_ci, paired_ttest, wilcoxon

__all__ = ["Evaluator", "EvalResult", "ScoreBlocks", "DEFAULT_KS", "top_k_items", "mask_matrix", "masked_top_k",
           "METRICS", "ranking_metrics",
           "paired_ttest", "wilcoxon", "fdr_adjusted", "mean_ci", "align", "compare", "Comparison",
           "detection_metrics", "roc_auc", "precision_at_count"]
