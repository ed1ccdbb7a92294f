"""Paired tests against scipy, degenerate inputs, aligning and comparing two runs."""
import warnings

import numpy as np
import pytest
from scipy import stats

from mmdenoise.eval import EvalResult, align, compare, fdr_adjusted, mean_ci, paired_ttest, wilcoxon


@pytest.fixture
def strict():
    """Any warning is an error (the degenerate cases must be silent)."""
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        yield


def test_against_scipy():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    b = a + 0.05 + 0.1 * rng.normal(size=200)
    t_ref, w_ref = stats.ttest_rel(a, b), stats.wilcoxon(a, b)
    assert paired_ttest(a, b) == pytest.approx((t_ref.statistic, t_ref.pvalue))
    assert wilcoxon(a, b) == pytest.approx((w_ref.statistic, w_ref.pvalue))
    assert paired_ttest(a, b)[1] < 0.05 and wilcoxon(a, b)[1] < 0.05


def test_against_scipy_on_metric_like_values_with_zeros_and_ties():
    # per-user recall values: mostly 0, many users equal in both runs (zero differences dropped)
    rng = np.random.default_rng(1)
    a = rng.choice([0.0, 0.25, 0.5, 1.0], size=120, p=[0.6, 0.2, 0.1, 0.1])
    b = np.where(rng.random(120) < 0.7, a, rng.choice([0.0, 0.5, 1.0], size=120))
    assert wilcoxon(a, b) == pytest.approx(tuple(stats.wilcoxon(a, b, zero_method="wilcox")))
    t_ref = stats.ttest_rel(a, b)
    assert paired_ttest(a, b) == pytest.approx((t_ref.statistic, t_ref.pvalue))


def test_identical_runs_give_p_one_without_warnings(strict):
    a = np.linspace(0, 1, 50)
    assert paired_ttest(a, a) == (0.0, 1.0)
    assert wilcoxon(a, a) == (0.0, 1.0)
    zeros = np.zeros(30)
    assert paired_ttest(zeros, zeros) == (0.0, 1.0) and wilcoxon(zeros, zeros) == (0.0, 1.0)


def test_degenerate_differences_without_warnings(strict):
    a = np.linspace(0, 1, 20)
    # every user moves by +0.25: zero variance, the t-test's limit is t = +inf, p = 0
    assert paired_ttest(a + 0.25, a) == (np.inf, 0.0)
    assert paired_ttest(a, a + 0.25) == (-np.inf, 0.0)
    # a single pair cannot be tested: no evidence either way
    assert paired_ttest([0.5], [0.2]) == (0.0, 1.0)
    assert paired_ttest([], []) == (0.0, 1.0) and wilcoxon([], []) == (0.0, 1.0)


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="equal length"):
        paired_ttest(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="finite"):
        wilcoxon(np.array([0.1, np.nan]), np.zeros(2))


def test_align_intersects_users():
    # run a: users 5, 0, 2, 1 (any order); run b: users 1, 2, 5, 7; common: 1, 2, 5
    users, x, y = align([5, 0, 2, 1], [0.4, 0.1, 0.3, 0.2], [1, 2, 5, 7], [0.25, 0.35, 0.45, 0.9])
    assert users.tolist() == [1, 2, 5]
    assert x.tolist() == [0.2, 0.3, 0.4] and y.tolist() == [0.25, 0.35, 0.45]
    with pytest.raises(ValueError, match="repeat"):
        align([1, 1], [0.1, 0.2], [1], [0.3])
    with pytest.raises(ValueError, match="aligned"):
        align([1, 2], [0.1], [1], [0.3])


def test_compare_per_user_files():
    a = {"users": np.array([0, 1, 2, 5]), "test_recall@20": np.array([0.1, 0.2, 0.3, 0.4]),
         "valid_users": np.array([0, 1]), "valid_recall@20": np.array([0.5, 0.5])}
    b = {"users": np.array([1, 2, 5, 7]), "test_recall@20": np.array([0.25, 0.35, 0.45, 0.9]),
         "valid_users": np.array([0, 1]), "valid_recall@20": np.array([0.5, 0.5])}
    c = compare(a, b, "recall@20")
    # common users 1, 2, 5: mean_a = (0.2 + 0.3 + 0.4) / 3 = 0.3, mean_b = (0.25 + 0.35 + 0.45) / 3 = 0.35
    assert c.metric == "recall@20" and c.n_users == 3
    assert c.mean_a == pytest.approx(0.3) and c.mean_b == pytest.approx(0.35)
    assert c.p_ttest == paired_ttest([0.2, 0.3, 0.4], [0.25, 0.35, 0.45])[1] == 0.0   # constant -0.05
    assert c.p_wilcoxon == pytest.approx(stats.wilcoxon([0.2, 0.3, 0.4], [0.25, 0.35, 0.45]).pvalue)
    v = compare(a, b, "recall@20", split="valid")
    assert (v.n_users, v.p_ttest, v.p_wilcoxon) == (2, 1.0, 1.0)
    with pytest.raises(KeyError, match="recall@20"):
        compare(a, b, "ndcg@20")
    with pytest.raises(ValueError, match="no evaluated user in common"):
        compare(a, {**b, "users": np.array([8, 9, 10, 11])})


def test_compare_eval_results():
    rng = np.random.default_rng(2)
    users = np.arange(0, 100, 2)
    ra = EvalResult({}, {"ndcg@20": rng.random(50)}, users)
    rb = EvalResult({}, {"ndcg@20": rng.random(50)}, users)
    c = compare(ra, rb, "ndcg@20")
    assert c.n_users == 50 and c.mean_a == pytest.approx(ra.per_user["ndcg@20"].mean())
    assert c.p_ttest == pytest.approx(stats.ttest_rel(ra.per_user["ndcg@20"], rb.per_user["ndcg@20"]).pvalue)
    assert c.p_wilcoxon == pytest.approx(stats.wilcoxon(ra.per_user["ndcg@20"], rb.per_user["ndcg@20"]).pvalue)


def test_fdr_adjusted_is_benjamini_hochberg_worked_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.2 (m = 4): p·m/k = 0.04, 0.06, 0.0533, 0.2, then the running minimum from
    # the largest down: 0.04, 0.0533, 0.0533, 0.2, back in the input's order
    np.testing.assert_allclose(fdr_adjusted([0.01, 0.04, 0.03, 0.2]), [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert fdr_adjusted([]).shape == (0,)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        fdr_adjusted([0.5, 1.5])


def test_mean_ci_is_the_t_interval_worked_by_hand():
    # differences 1, 2, 3, 6: mean 3, sd sqrt(14/3), n 4, t(0.975, 3) = 3.18245
    half = 3.182446305284263 * np.sqrt(14 / 3) / 2
    np.testing.assert_allclose(mean_ci([1.0, 2.0, 3.0, 6.0]), (3 - half, 3 + half))
    # it agrees with the paired t-test: 0 is outside the 95% interval exactly when p < 0.05
    rng = np.random.default_rng(0)
    for shift in (0.0, 0.05, 0.1, 0.2):
        a, b = rng.normal(shift, 1, 200), rng.normal(0, 1, 200)
        low, high = mean_ci(a - b)
        assert (low > 0 or high < 0) == (paired_ttest(a, b)[1] < 0.05)
    assert mean_ci([0.5, 0.5, 0.5]) == (0.5, 0.5) and all(np.isnan(mean_ci([1.0])))
    with pytest.raises(ValueError, match="finite"):
        mean_ci([1.0, np.nan])
