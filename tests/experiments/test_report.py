"""The comparison report: bold best, significance marks against ``none``, detection table."""
import numpy as np
import pytest

from mmdenoise.errors import MMDenoiseError
from mmdenoise.experiments.report import comparison_table, comparison_table_latex, find_runs, write_report
from mmdenoise.training import record


def _run(root, model, denoiser, per_user, seed=0, detection=None):
    path = root / f"{model}-{denoiser}-{seed}"
    path.mkdir(parents=True)
    users = np.arange(per_user.size)
    result = {"dataset": {"name": "toy"}, "model": model, "denoiser": denoiser, "seed": seed,
              "test": {"recall@20": float(per_user.mean()), "ndcg@20": float(per_user.mean() / 2)}}
    if detection is not None:
        result["detection"] = detection
    record.write_result(path, result)
    from mmdenoise.io import save_npz
    save_npz(path / record.PER_USER_FILE, users=users, **{"test_recall@20": per_user, "test_ndcg@20": per_user / 2})
    return path


def test_table_marks_best_and_significant_improvements(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.random(200) * 0.5
    _run(tmp_path, "mf", "none", base)
    _run(tmp_path, "mf", "tce", base + 0.05 + 0.01 * rng.random(200))   # clearly better: bold and *
    _run(tmp_path, "mf", "rce", base + 0.001 * rng.normal(size=200))    # indistinguishable: no *
    table = comparison_table(find_runs(tmp_path))
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "*" in rows["tce"] and rows["tce"].count("**") == 4  # both metrics bold
    assert "*" not in rows["rce"] and "*" not in rows["none"]
    assert table.index("| none") < table.index("| rce")  # the baseline row first


def test_report_file_includes_detection(tmp_path):
    _run(tmp_path, "lightgcn", "none", np.full(10, 0.3))
    _run(tmp_path, "lightgcn", "tce", np.full(10, 0.3), detection={"auc": 0.71, "precision@noise": 0.4})
    text = write_report(tmp_path).read_text()
    assert "| toy | lightgcn | tce | 0 | 0.710 | 0.400 |" in text


def test_no_runs_is_a_clear_error(tmp_path):
    with pytest.raises(MMDenoiseError, match="no run folders"):
        find_runs(tmp_path)
    with pytest.raises(MMDenoiseError, match="missing: no such folder"):
        find_runs(tmp_path / "missing")


def test_latex_table_bolds_the_best_and_marks_significance_after_the_value(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.random(200) * 0.5
    _run(tmp_path, "mf", "none", base)
    better = _run(tmp_path, "mf", "tce", base + 0.05 + 0.01 * rng.random(200))
    _run(tmp_path, "mf", "rce", base + 0.001 * rng.normal(size=200))
    _run(tmp_path, "mf_x", "none", base)
    tex = comparison_table_latex(find_runs(tmp_path))
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\multicolumn{2}{c}{mf\_x}" in tex  # names are escaped
    rows = {line.split(" & ")[0]: line for line in tex.splitlines() if " & " in line and line[0] != " "}
    r20 = record.read_result(better)["test"]["recall@20"]
    assert rows["tce"].startswith(rf"tce & \textbf{{{r20:.4f}}}$^*$ & \textbf{{")
    assert rows["tce"].count("$^*$") == 2
    assert "$^*$" not in rows["rce"] and "$^*$" not in rows["none"] and r"\textbf" not in rows["rce"]
    assert rows["rce"].endswith(r"-- & -- \\")  # mf_x has no rce run
    assert rows["none"].count(r"\textbf") == 2  # mf_x: none is its only, hence best, run


def test_report_writes_training_curves_and_latex(tmp_path):
    for denoiser, slope in (("none", 0.01), ("tce", 0.02)):
        run = _run(tmp_path, "mf", denoiser, np.full(10, 0.3))
        record.write_metrics(run, [{"epoch": e, "loss": 1.0, "valid": {"recall@20": slope * e}} for e in range(4)])
    md = write_report(tmp_path).read_text()
    png = tmp_path / "training_curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "(training_curves.png)" in md
    tex = write_report(tmp_path, fmt="latex")
    assert tex.name == "report.tex"
    assert r"\includegraphics[width=\linewidth]{training_curves.png}" in tex.read_text()
    with pytest.raises(MMDenoiseError, match="unknown report format 'html'"):
        write_report(tmp_path, fmt="html")


# ------------------------------------------------ runs on different data never mix (issue 23, class 8)
def _run_on(root, name, model, denoiser, per_user, fingerprint, noise=None, seed=0):
    path = _run(root / fingerprint, model, denoiser, per_user, seed=seed)
    result = record.read_result(path)
    result["dataset"] = {"name": name, "fingerprint": fingerprint, **({"noise": noise} if noise else {})}
    record.write_result(path, result)
    return path


def test_a_noised_copy_under_the_same_name_gets_its_own_table(tmp_path):
    clean = _run_on(tmp_path, "ml-100k", "freedom", "none", np.full(50, 0.3459), "aaaa")
    noised = _run_on(tmp_path, "ml-100k", "freedom", "none", np.full(50, 0.3400), "bbbb",
                     noise={"add": 0.1, "seed": 0})
    table = comparison_table([clean, noised])
    assert "0.3430" not in table                         # never the mean of clean and noised
    assert "0.3459" in table and "0.3400" in table
    assert "**ml-100k (noise add 0.1)**" in table and "**ml-100k (fingerprint aaaa)**" in table


def test_same_name_different_fingerprints_without_noise_are_labelled_by_fingerprint(tmp_path):
    a = _run_on(tmp_path, "toy", "mf", "none", np.full(20, 0.2), "f1")
    b = _run_on(tmp_path, "toy", "mf", "none", np.full(20, 0.4), "f2", seed=1)
    table = comparison_table([a, b])
    assert table.count("(test, mean over seeds") == 2 and "toy (fingerprint f1)" in table


def test_pairing_or_averaging_runs_on_different_data_is_refused(tmp_path):
    from mmdenoise.errors import RunError
    from mmdenoise.eval.pairing import paired_per_user, per_user_mean
    a = _run_on(tmp_path, "ml-100k", "mf", "none", np.full(20, 0.2), "f1")
    b = _run_on(tmp_path, "ml-100k", "mf", "tce", np.full(20, 0.4), "f2", noise={"add": 0.2, "seed": 1})
    with pytest.raises(RunError, match="cannot average or pair runs trained on different data"):
        paired_per_user([b], [a], "recall@20")
    with pytest.raises(RunError, match=r"ml-100k \(noise add 0.2\)"):
        per_user_mean([a, b], "recall@20")


def test_detection_rows_name_the_noised_copy(tmp_path):
    from mmdenoise.experiments.report import detection_table
    a = _run_on(tmp_path, "ml-100k", "mf", "none", np.full(20, 0.2), "f1")
    path = _run(tmp_path / "n", "mf", "tce", np.full(20, 0.2), detection={"auc": 0.7, "precision@noise": 0.3})
    result = record.read_result(path)
    result["dataset"] = {"name": "ml-100k", "fingerprint": "f2", "noise": {"add": 0.1, "seed": 0}}
    record.write_result(path, result)
    assert "| ml-100k (noise add 0.1) | mf | tce |" in detection_table([a, path])


@pytest.mark.parametrize("content", ['{"model": "mf", "test": {"recall', "", "[1, 2]", '{"model": "mf"}'])
def test_a_damaged_result_is_a_clear_error(tmp_path, content):
    from mmdenoise.errors import RunError
    path = _run(tmp_path, "mf", "none", np.full(10, 0.3))
    (path / record.RESULT_FILE).write_text(content)
    with pytest.raises(RunError, match="result.json is damaged"):
        write_report(tmp_path)


def test_noise_draws_of_one_level_average_but_levels_do_not_mix(tmp_path):
    """A noise study's seeds are each their own noise draw: same level → one cell, other level → refused."""
    from mmdenoise.errors import RunError
    from mmdenoise.eval.pairing import per_user_mean
    runs = [_run_on(tmp_path, "toy", "mf", "none", np.full(20, 0.2 + s / 100), f"f{s}", seed=s,
                    noise={"add": 0.1, "seed": s, "source": "clean"}) for s in range(2)]
    assert np.allclose(per_user_mean(runs, "recall@20")[1], 0.205)
    other = _run_on(tmp_path, "toy", "mf", "none", np.full(20, 0.3), "g",
                    noise={"add": 0.2, "seed": 0, "source": "clean"})
    with pytest.raises(RunError, match=r"toy \(noise add 0.2\)"):
        per_user_mean([*runs, other], "recall@20")
    assert comparison_table(runs).count("mean over seeds") == 1


def test_curve_table_averages_seeds_per_epoch_with_detection(tmp_path):
    """Validation R@20 / detection AUC at the listed epochs, mean over seeds; a seed that stopped early
    is counted out ("(1 of 2)"); a denoiser without a judgement shows the metric alone."""
    from mmdenoise.experiments.report import curve_table

    def history(values, aucs=None):
        return [{"epoch": e, "valid": {"recall@20": v}, **({"detection": {"auc": aucs[e]}} if aucs else {})}
                for e, v in enumerate(values)]
    for seed, (values, aucs) in enumerate([([0.1] * 20, [0.6] * 20), ([0.3] * 10, [0.8] * 10)]):
        record.write_metrics(_run(tmp_path, "mf", "tce", np.full(5, 0.3), seed=seed), history(values, aucs))
    record.write_metrics(_run(tmp_path, "mf", "none", np.full(5, 0.3)), history([0.2] * 20))
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in curve_table(find_runs(tmp_path)).splitlines() if line.startswith("| ")}
    assert rows["epoch"] == ["mf + none", "mf + tce"]
    assert rows["1"] == ["0.2000", "0.2000 / 0.700"]
    assert rows["10"] == ["0.2000", "0.2000 / 0.700"]
    assert rows["20"] == ["0.2000", "0.1000 / 0.600 (1 of 2)"]
    assert "40" not in rows


def test_curve_table_is_empty_without_epoch_wise_detection(tmp_path):
    from mmdenoise.experiments.report import curve_table
    record.write_metrics(_run(tmp_path, "mf", "none", np.full(5, 0.3)), [{"epoch": 0, "valid": {"recall@20": 0.2}}])
    assert curve_table(find_runs(tmp_path)) == ""


def test_compare_two_groups_of_runs_by_hand(tmp_path):
    """`mmdenoise compare`: seeds averaged user by user, then Δ, its interval and both paired tests."""
    from typer.testing import CliRunner

    from mmdenoise.cli import app
    from mmdenoise.eval.pairing import compare_runs
    a0 = _run(tmp_path, "mf", "tce", np.array([0.5, 0.3, 0.4, 0.2]), seed=0)
    a1 = _run(tmp_path, "mf", "tce", np.array([0.3, 0.3, 0.2, 0.4]), seed=1)   # a: 0.4, 0.3, 0.3, 0.3
    b = _run(tmp_path, "mf", "none", np.array([0.2, 0.2, 0.3, 0.1]))
    row = compare_runs([a0, a1], [b], ["recall@20"])[0]
    # differences 0.2, 0.1, 0.0, 0.2: mean 0.125, sd 0.0957, t = 0.125 / (0.0957 / 2) = 2.611 on 3 df
    assert row["users"] == 4 and row["mean_a"] == pytest.approx(0.325) and row["mean_b"] == pytest.approx(0.2)
    assert row["delta"] == pytest.approx(0.125) and row["p_ttest"] == pytest.approx(0.0796, abs=1e-4)
    half = 3.1824 * 0.095743 / 2                                                 # t(0.975, 3) · sd / √n
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.125 - half, 0.125 + half), abs=1e-4)
    shown = CliRunner().invoke(app, ["compare", f"{a0},{a1}", str(b), "--metric", "recall@20"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert f"A: {a0} and 1 more (mf + tce on toy, seeds 0, 1)" in shown.output
    assert f"B: {b} (mf + none on toy, seed 0)" in shown.output and "4 test users paired" in shown.output
    assert "| recall@20 | 0.3250 | 0.2000 | +0.1250 | [-0.0273, +0.2773] | 0.08 |" in shown.output
    matched = CliRunner().invoke(app, ["compare", str(tmp_path / "mf-tce-*"), str(b), "--metric", "recall@20"],
                                 terminal_width=200)                        # a quoted wildcard: both seeds
    assert matched.exit_code == 0 and f"A: {a0} and 1 more (mf + tce on toy, seeds 0, 1)" in matched.output
    assert "no folder matches" in str(CliRunner().invoke(app, ["compare", str(tmp_path / "x*"), str(b)]).exception)
    folder = CliRunner().invoke(app, ["compare", str(tmp_path), str(b)])      # the folder holding the runs
    assert (f"compare: A: {tmp_path} holds runs ({b.name}, {a0.name}, {a1.name}), it is not one: name them "
            f"comma-separated, or quote a wildcard ('{tmp_path / '*'}' for all of them)") in str(folder.exception)
    nothing = CliRunner().invoke(app, ["compare", str(tmp_path / "nope"), str(b)])
    assert "nope is not a run folder (no config.yaml)" in str(nothing.exception)
    missing = CliRunner().invoke(app, ["compare", str(a0), str(b), "--metric", "recall@30"])
    assert "no per-user test 'recall@30'; it has ndcg@20, recall@20" in str(missing.exception)


def test_without_none_no_caption_promises_a_test_against_it(tmp_path):
    _run(tmp_path, "mf", "tce", np.full(20, 0.3))
    assert "(test, mean over seeds)\n" in comparison_table(find_runs(tmp_path))
    assert "Best in bold.}" in comparison_table_latex(find_runs(tmp_path)).replace("\n", "")
