"""DA-MRS objectives (Xv et al., KDD'24, §3.3–3.4): denoised BPR, user-preference and graded item alignment.

Pure functions of scores and logits, all computed in log space so that no
term overflows, underflows to log 0 or divides 0 by 0 (the released code's
alignment loss produces NaN; these do not). The paper's sums over triples,
users and items become means (as BPR is a mean everywhere here); λ1, λ2
absorb the scale.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reliability(view_scores: torch.Tensor, negative_mean: torch.Tensor, alpha: float, beta: float,
                gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """log f(u, i) and log g(u, i) of the D-BPR Bernoulli parameters (Eq. 6–7).

    view_scores: ŷ^m_ui = u_uᵀ h^m_i [B, V] over the views m (modalities and
        behaviour); negative_mean: ŷ_n, the batch mean of σ(ŷ_uj) over its
        negatives (scalar).
    f = μ^α · exp(−s²)^β with μ, s² the mean and (population) variance of
    σ(ŷ^m_ui) over the views, so log f = α log μ − β s², log μ from
    log-sigmoids (finite for any score). g = σ(max_m ŷ^m_ui − ŷ_n)^γ where
    ŷ_n > μ, else 0 (log g = −inf). Returns ([B], [B]), differentiable in
    both inputs; DA-MRS calls it under no_grad (f and g as weights) unless
    its ``fg_gradient`` is on.
    """
    log_probs = F.logsigmoid(view_scores)
    probs = log_probs.exp()
    mu = probs.mean(1)
    variance = (probs - mu[:, None]).pow(2).mean(1)
    log_mu = torch.logsumexp(log_probs, 1) - math.log(view_scores.shape[1])
    log_f = alpha * log_mu - beta * variance
    log_g = gamma * F.logsigmoid(view_scores.max(1).values - negative_mean)
    log_g = torch.where(negative_mean > mu, log_g, torch.full_like(log_g, -torch.inf))
    return log_f, log_g


def denoised_bpr(diff: torch.Tensor, log_f: torch.Tensor, log_g: torch.Tensor) -> torch.Tensor:
    """D-BPR (Eq. 8): −mean log( f·σ(Δ) + g·(1 − σ(Δ)) ), as a log-sum-exp.

    diff: Δ = ŷ_ui − ŷ_uj [B]; log_f, log_g: [B] (detached; −inf for a zero
    weight, 0 for a weight of 1). Each term is
    logaddexp(log f + log σ(Δ), log g + log σ(−Δ)), finite for any finite Δ
    as long as f or g is positive; f = 1, g = 0 gives BPR.
    """
    per_pair = torch.logaddexp(log_f + F.logsigmoid(diff), log_g + F.logsigmoid(-diff))
    return -per_pair.mean()


def symmetric_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """L_AU (Eq. 9–10): mean over rows of KL(P‖Q) + KL(Q‖P), P, Q = softmax of the rows.

    logits_p, logits_q: [N, I] (e.g. u·h^mm and u·h^id over all items).
    Equals Σ_i (p_i − q_i)(log p_i − log q_i) per row, from log-softmax:
    finite for any finite logits (±1e4 included). Returns a scalar ≥ 0.
    """
    log_p = F.log_softmax(logits_p, dim=1)
    log_q = F.log_softmax(logits_q, dim=1)
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(1).mean()


AI_STRATEGIES = ("full", "sp", "mp")


def graded_contrastive(multi: torch.Tensor, single: torch.Tensor, batch: torch.Tensor,
                       dissimilar: torch.Tensor, strategy: str = "full") -> torch.Tensor:
    """L_AI for one view (Eq. 11), mean over anchor items.

    multi: logits cos(h_i, h_j)/τ [N, a] over the multi-modal similar set R_i;
    single: [N, b] over the single-modal similar set T_i (b may be 0);
    batch: [N, n] over the batch's items; dissimilar: bool [N, n], the
    batch items in N_i (neither similar set, nor i itself). With φ = exp(logit):
      full: −log Σ_R φ / (Σ_R φ + Σ_T φ + Σ_N φ) − log Σ_T φ / (Σ_T φ + Σ_N φ)
            (L_AI-MM + L_AI-S);
      sp:   positives R ∪ T, negatives N (paper Table 4, "SP");
      mp:   positives R, negatives T ∪ N ("MP").
    Sums of φ are log-sum-exps; an empty N contributes nothing.
    """
    if strategy not in AI_STRATEGIES:
        raise ValueError(f"unknown AI strategy {strategy!r}; valid: {', '.join(AI_STRATEGIES)}")
    lse_n = torch.logsumexp(batch.masked_fill(~dissimilar, torch.finfo(batch.dtype).min), 1)
    lse_r = torch.logsumexp(multi, 1)
    if single.shape[1] == 0:  # no single-modal similar items: every grade collapses to R vs N
        return (torch.logaddexp(lse_r, lse_n) - lse_r).mean()
    lse_t = torch.logsumexp(single, 1)
    if strategy == "sp":
        lse_pos = torch.logaddexp(lse_r, lse_t)
        return (torch.logaddexp(lse_pos, lse_n) - lse_pos).mean()
    everything = torch.logsumexp(torch.stack([lse_r, lse_t, lse_n]), 0)
    multi_term = everything - lse_r
    if strategy == "mp":
        return multi_term.mean()
    return (multi_term + torch.logaddexp(lse_t, lse_n) - lse_t).mean()
