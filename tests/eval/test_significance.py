import numpy as np
import pytest
from scipy import stats

from mmdenoise.eval import align, compare, paired_ttest, wilcoxon


def test_against_scipy():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    b = a + 0.05 + 0.1 * rng.normal(size=200)
    assert paired_ttest(a, b)[1] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert wilcoxon(a, b)[1] == pytest.approx(stats.wilcoxon(a - b).pvalue)
    assert paired_ttest(a, b)[1] < 0.05


def test_identical_runs_give_p_one_without_warnings():
    a = np.linspace(0, 1, 50)
    with np.errstate(all="raise"):
        assert paired_ttest(a, a)[1] == 1.0 and wilcoxon(a, a)[1] == 1.0


def test_align_and_compare_per_user_files():
    a = {"users": np.array([0, 1, 2, 5]), "test_recall@20": np.array([0.1, 0.2, 0.3, 0.4])}
    b = {"users": np.array([1, 2, 5, 7]), "test_recall@20": np.array([0.25, 0.35, 0.45, 0.9])}
    users, x, y = align(a["users"], a["test_recall@20"], b["users"], b["test_recall@20"])
    assert users.tolist() == [1, 2, 5] and x.tolist() == [0.2, 0.3, 0.4] and y.tolist() == [0.25, 0.35, 0.45]
    c = compare(a, b)
    assert c.n_users == 3 and c.mean_a == pytest.approx(0.3) and c.mean_b == pytest.approx(0.35)
