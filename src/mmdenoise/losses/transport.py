"""Entropic optimal transport (Cuturi 2013) in the log domain, and GUIDER's OT distillation loss.

GUIDER (WSDM'25, §4.3) distils ranking logits through the transport plan
P_λ = argmin_{P ∈ U(a, b)} ⟨P, D⟩ − λ H(P)   (Eq. 11–12)
computed by Sinkhorn's scaling iterations (Eq. 13–15). The kernel
K = exp(−D/λ) (Eq. 14) underflows to 0 for small λ (float32: D/λ > ~87), so
the iterations here run on the dual potentials (f, g) with log-sum-exp:

    f ← λ (log a − LSE_j((g_j − D_ij)/λ)),   g ← λ (log b − LSE_i((f_i − D_ij)/λ)),
    P_ij = exp((f_i + g_j − D_ij)/λ),

which is the same fixed point as Eq. 13 with u = e^{f/λ}, v = e^{g/λ}
(P = diag(u) K diag(v), Eq. 15) and never forms K. The default solver keeps
the potentials in the log domain but runs Eq. 13's cheap matrix–vector
scalings on a kernel re-centred on them (absorption), which gives the same
plan at a fraction of the cost; the pure log-sum-exp iterations remain as
``method="log"`` and as the fallback.
"""
from __future__ import annotations


import torch


def sinkhorn_plan(a: torch.Tensor, b: torch.Tensor, cost: torch.Tensor, reg: float, *,
                  max_iters: int = 200, tol: float = 1e-6, check_every: int = 10,
                  method: str = "stabilized") -> torch.Tensor:
    """The entropic transport plan P_λ [..., M, N] between histograms a [..., M] and b [..., N].

    Leading dimensions are independent problems solved together. Each
    histogram sums to 1; cost: D [..., M, N]; reg: λ > 0. Stops when the
    largest row-marginal error ‖P1 − a‖₁ falls below ``tol`` (checked every
    ``check_every`` iterations) or after ``max_iters``. method:
    ``stabilized`` (matrix–vector scaling on a kernel re-centred on the
    current potentials; the default, several times faster) or ``log`` (every
    iteration a log-sum-exp). Both reach the same fixed point. Differentiable
    by unrolling (autograd through every iteration); detach the inputs for
    the envelope-style gradient.
    """
    if reg <= 0:
        raise ValueError(f"the entropic regulariser must be > 0, got {reg}")
    if method not in ("stabilized", "log"):
        raise ValueError(f"method must be 'stabilized' or 'log', got {method!r}")
    scaled = -cost / reg  # log K
    if method == "stabilized":
        plan = _sinkhorn_stabilized(a, b, scaled, max_iters, tol, check_every)
        if plan is not None:
            return plan
    log_a, log_b = a.clamp_min(1e-38).log(), b.clamp_min(1e-38).log()
    f_over = torch.zeros_like(a)  # f / λ
    g_over = torch.zeros_like(b)  # g / λ
    for step in range(max_iters):
        f_over = log_a - torch.logsumexp(scaled + g_over.unsqueeze(-2), dim=-1)
        g_over = log_b - torch.logsumexp(scaled + f_over.unsqueeze(-1), dim=-2)
        if (step + 1) % check_every == 0:
            with torch.no_grad():
                rows = torch.logsumexp(scaled + f_over.unsqueeze(-1) + g_over.unsqueeze(-2), dim=-1).exp()
                if (rows - a).abs().sum(-1).max() < tol:
                    break
    return (scaled + f_over.unsqueeze(-1) + g_over.unsqueeze(-2)).exp()


def _sinkhorn_stabilized(a, b, scaled, max_iters: int, tol: float, check_every: int,
                         absorb_above: float = 30.0) -> torch.Tensor | None:
    """Eq. 13's scaling iterations u = a ⊘ K̃v, v = b ⊘ K̃ᵀu on the kernel re-centred on dual
    potentials, K̃_ij = exp(log K_ij + α_i + β_j), with α, β absorbing log u, log v whenever either
    leaves [−``absorb_above``, ``absorb_above``] (Schmitzer 2019's absorption).

    α starts at each row's −max log K and β at each column's, so every row and column of K̃
    holds a 1 and nothing that matters underflows, whatever λ; each iteration is then two
    batched matrix–vector products instead of two log-sum-exps over [..., M, N]. Returns None
    (the caller falls back to log-domain iterations) if the scalings stop being finite.
    """
    tiny = torch.finfo(scaled.dtype).tiny
    alpha = -scaled.amax(-1)
    beta = -(scaled + alpha.unsqueeze(-1)).amax(-2)

    def recentred():  # K̃ and a contiguous K̃ᵀ: row-vector × matrix products are the fast kind
        kernel = (scaled + alpha.unsqueeze(-1) + beta.unsqueeze(-2)).exp()
        return kernel, kernel.transpose(-2, -1).contiguous()

    times = lambda vector, matrix: (vector.unsqueeze(-2) @ matrix).squeeze(-2)  # noqa: E731
    (kernel, kernel_t), u, v = recentred(), torch.ones_like(a), torch.ones_like(b)
    for step in range(max_iters):
        u = a / times(v, kernel_t).clamp_min(tiny)  # K̃v
        v = b / times(u, kernel).clamp_min(tiny)  # K̃ᵀu
        with torch.no_grad():
            log_u, log_v = u.clamp_min(tiny).log(), v.clamp_min(tiny).log()
            if not (torch.isfinite(log_u).all() and torch.isfinite(log_v).all()):
                return None
            absorb = bool(log_u.abs().max() > absorb_above or log_v.abs().max() > absorb_above)
        if absorb:
            alpha, beta = alpha + u.clamp_min(tiny).log(), beta + v.clamp_min(tiny).log()
            (kernel, kernel_t), u, v = recentred(), torch.ones_like(a), torch.ones_like(b)
        if (step + 1) % check_every == 0:
            with torch.no_grad():
                rows = u * times(v, kernel_t)
                if (rows - a).abs().sum(-1).max() < tol:
                    break
    return u.unsqueeze(-1) * kernel * v.unsqueeze(-2)


def sinkhorn_distance(a: torch.Tensor, b: torch.Tensor, cost: torch.Tensor, reg: float, *,
                      gradient: str = "envelope", **kwargs) -> torch.Tensor:
    """⟨P_λ, D⟩ (GUIDER Eq. 9; POT's ``sinkhorn2``): a scalar, or one per leading index.

    gradient: ``envelope`` solves for the plan without autograd and
    differentiates ⟨P, D⟩ in D with P held fixed (cheap: one backward through
    D); ``unrolled`` backpropagates through every Sinkhorn iteration
    (gradients also reach a and b), through the log-domain iterations unless
    ``method`` says otherwise.
    """
    if gradient == "envelope":
        with torch.no_grad():
            plan = sinkhorn_plan(a, b, cost, reg, **kwargs)
    elif gradient == "unrolled":  # log-sum-exp steps: their backward stays finite at extreme costs
        plan = sinkhorn_plan(a, b, cost, reg, **{"method": "log", **kwargs})
    else:
        raise ValueError(f"gradient must be 'envelope' or 'unrolled', got {gradient!r}")
    return (plan * cost).sum((-2, -1))


def ranking_logits(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """z_b = log σ(s_ui − s_uj) for each triple of a batch (GUIDER Eq. 7/10): [B]."""
    return torch.nn.functional.logsigmoid(pos_scores - neg_scores)


def ot_distillation(teacher_logits: torch.Tensor, student_logits: torch.Tensor, reg: float = 0.1, *,
                    block: int | None = None, gradient: str = "envelope", **kwargs) -> torch.Tensor:
    """GUIDER's OT knowledge-distillation loss (Eq. 9–15) over one batch of ranking logits.

    teacher_logits, student_logits: z^t, z^s [B]; the teacher side is detached.
    Cost D_mn = (z^t_m − z^s_n)² (Eq. 10); marginals a = softmax(z^t),
    b = softmax(z^s) (the paper's "logits distributions"); returns ⟨P_λ, D⟩.
    block: solve the batch as independent OT problems over consecutive blocks
    of ``block`` triples (the mean of their distances), O(B·block) instead of
    O(B²) per iteration; None = one problem over the whole batch, as in the
    paper. A last partial block is dropped when B > block (batches are shuffled).
    """
    teacher = teacher_logits.detach()
    student = student_logits
    if block is not None and teacher.shape[0] > block:
        n = teacher.shape[0] // block * block
        teacher, student = teacher[:n].reshape(-1, block), student[:n].reshape(-1, block)
    cost = (teacher.unsqueeze(-1) - student.unsqueeze(-2)).pow(2)
    a, b = torch.softmax(teacher, -1), torch.softmax(student, -1)
    return sinkhorn_distance(a, b, cost, reg, gradient=gradient, **kwargs).mean()


def kl_distillation(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(a ‖ b) with a = softmax(z^t) (detached), b = softmax(z^s): GUIDER's "w/ KL" ablation. Scalar."""
    log_a = torch.log_softmax(teacher_logits.detach(), 0)
    log_b = torch.log_softmax(student_logits, 0)
    return (log_a.exp() * (log_a - log_b)).sum()
