"""Evaluation: full-ranking evaluator, metrics, significance tests. Knows nothing about models."""
from .evaluator import DEFAULT_KS, EvalResult, Evaluator, top_k_items
from .metrics import METRICS, ranking_metrics
from .significance import Comparison, align, compare, paired_ttest, wilcoxon

__all__ = ["Evaluator", "EvalResult", "DEFAULT_KS", "top_k_items", "METRICS", "ranking_metrics",
           "paired_ttest", "wilcoxon", "align", "compare", "Comparison"]
