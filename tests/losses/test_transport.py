"""Log-domain Sinkhorn against POT, including regularisers where the naive kernel underflows."""
import numpy as np
import pytest
import torch

from mmdenoise.losses.transport import (kl_distillation, ot_distillation, ranking_logits, sinkhorn_distance,
                                        sinkhorn_plan)

ot = pytest.importorskip("ot")


def _problem(seed, m=12, n=9):
    rng = np.random.default_rng(seed)
    a, b = rng.random(m) + 0.1, rng.random(n) + 0.1
    return a / a.sum(), b / b.sum(), rng.random((m, n)) * 3


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("reg", [1.0, 0.1])
def test_plan_and_value_match_pot(seed, reg):
    a, b, cost = _problem(seed)
    expected_plan = ot.sinkhorn(a, b, cost, reg, numItermax=100_000, stopThr=1e-12)
    expected = ot.sinkhorn2(a, b, cost, reg, numItermax=100_000, stopThr=1e-12)
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    plan = sinkhorn_plan(t(a), t(b), t(cost), reg, max_iters=20_000, tol=1e-12)
    assert np.abs(plan.numpy() - expected_plan).max() < 1e-4
    assert float(sinkhorn_distance(t(a), t(b), t(cost), reg, max_iters=20_000, tol=1e-12)) == \
        pytest.approx(float(expected), abs=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_small_regulariser_stays_finite_where_the_kernel_underflows(seed):
    a, b, cost = _problem(seed)
    reg = 0.01  # the naive kernel exp(-D / λ) underflows to 0 in float32
    assert (np.exp(-cost / reg).astype(np.float32) == 0).any()
    expected = ot.sinkhorn2(a, b, cost, reg, method="sinkhorn_log", numItermax=100_000, stopThr=1e-12)
    t = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    value = sinkhorn_distance(t(a), t(b), t(cost), reg, max_iters=20_000, tol=1e-7)
    assert torch.isfinite(value)
    assert float(value) == pytest.approx(float(expected), abs=1e-4)


def test_plan_has_the_requested_marginals():
    a, b, cost = _problem(7, 30, 40)
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    plan = sinkhorn_plan(t(a), t(b), t(cost), 0.05, max_iters=5000, tol=1e-10)
    assert torch.allclose(plan.sum(1), t(a), atol=1e-8) and torch.allclose(plan.sum(0), t(b), atol=1e-6)


def test_ot_distillation_pulls_student_logit_distribution_toward_teacher():
    torch.manual_seed(0)
    teacher = ranking_logits(torch.randn(64) + 1.0, torch.randn(64))
    student = torch.zeros(64, requires_grad=True)
    optimizer = torch.optim.SGD([student], lr=0.5)
    gap = lambda: float((student.detach().sort().values - teacher.sort().values).abs().mean())  # noqa: E731
    gap_before, losses = gap(), []
    for _ in range(100):
        loss = ot_distillation(teacher, student, reg=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # OT matches distributions (permutation-invariant), so compare sorted logits
    assert losses[-1] < 0.7 * losses[0] and gap() < 0.85 * gap_before
    assert teacher.grad is None  # the teacher side is detached


@pytest.mark.parametrize("gradient", ["envelope", "unrolled"])
def test_gradients_are_finite_for_extreme_logits(gradient):
    teacher = torch.tensor([-80.0, -1e-3, -5.0, -30.0])
    student = torch.tensor([-1e-4, -60.0, -2.0, -0.5], requires_grad=True)
    loss = ot_distillation(teacher, student, reg=0.01, gradient=gradient)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_kl_is_zero_for_equal_logits_and_positive_otherwise():
    z = torch.randn(16)
    assert float(kl_distillation(z, z)) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_distillation(z, z.flip(0))) > 0


def test_batched_problems_equal_separate_ones():
    problems = [_problem(s, 10, 10) for s in range(3)]
    t = lambda i: torch.tensor(np.stack([p[i] for p in problems]))  # noqa: E731
    batched = sinkhorn_distance(t(0), t(1), t(2), 0.1, max_iters=2000, tol=1e-10)
    single = [sinkhorn_distance(*(torch.tensor(x) for x in p), 0.1, max_iters=2000, tol=1e-10) for p in problems]
    assert torch.allclose(batched, torch.stack(single), atol=1e-8)


def test_blocked_distillation_is_the_mean_over_blocks():
    z_t, z_s = torch.randn(8), torch.randn(8)
    blocked = ot_distillation(z_t, z_s, 0.5, block=4)
    halves = (ot_distillation(z_t[:4], z_s[:4], 0.5) + ot_distillation(z_t[4:], z_s[4:], 0.5)) / 2
    assert torch.allclose(blocked, halves, atol=1e-6)


@pytest.mark.parametrize("reg", [0.5, 0.01])
def test_stabilized_and_log_domain_iterations_give_the_same_plan(reg):
    a, b, cost = _problem(11)
    t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    stabilized = sinkhorn_plan(t(a), t(b), t(cost), reg, max_iters=50_000, tol=1e-11)
    logd = sinkhorn_plan(t(a), t(b), t(cost), reg, max_iters=50_000, tol=1e-11, method="log")
    assert torch.allclose(stabilized, logd, atol=1e-9)


def test_stabilized_solver_absorbs_in_float32_where_the_kernel_underflows():
    rng = np.random.default_rng(3)
    z_t, z_s = -rng.exponential(3.0, 256), -rng.exponential(3.0, 256)
    cost = (z_t[:, None] - z_s[None, :]) ** 2
    a, b = np.exp(z_t) / np.exp(z_t).sum(), np.exp(z_s) / np.exp(z_s).sum()
    expected = ot.sinkhorn2(a, b, cost, 0.1, method="sinkhorn_log", numItermax=100_000, stopThr=1e-10)
    t = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    assert (torch.exp(-t(cost) / 0.1) == 0).any()
    value = sinkhorn_distance(t(a), t(b), t(cost), 0.1, max_iters=20_000, tol=1e-6)
    assert float(value) == pytest.approx(float(expected), abs=1e-4)


def test_unknown_method_is_refused():
    a, b, cost = (torch.tensor(x) for x in _problem(0))
    with pytest.raises(ValueError, match="method"):
        sinkhorn_plan(a, b, cost, 0.1, method="naive")
