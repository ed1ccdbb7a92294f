"""`mmdenoise bench --scale`: the log–log slope on hand-worked numbers, an end-to-end run on two small
datasets (each benchmarked in its own subprocess), and the errors that leave nothing written."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mmdenoise.bench import SCALE_COLUMNS, bench_scale, log_log_slope
from mmdenoise.cli import app
from mmdenoise.data import synth
from mmdenoise.errors import ConfigError, MMDenoiseError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_slope_of_power_laws_is_their_exponent():
    sizes = [1_000, 4_000, 16_000, 160_000]
    for exponent in (0.5, 1.0, 2.0):
        slope, intercept = log_log_slope(sizes, [3e-5 * n ** exponent for n in sizes])
        assert slope == pytest.approx(exponent, abs=1e-12)
        assert intercept == pytest.approx(np.log(3e-5), abs=1e-9)
    # two points are enough: 2 s at 1,000 and 8 s at 4,000 grow as n^1
    assert log_log_slope([1_000, 4_000], [2.0, 8.0])[0] == pytest.approx(1.0)
    # off the line, the least-squares fit: logs base 10 x = 0, 1, 2 and y = 0, 1, 3 give slope 1.5
    assert log_log_slope([1, 10, 100], [1, 10, 1000])[0] == pytest.approx(1.5)


@pytest.mark.parametrize("sizes, costs, message", [
    ([1_000], [1.0], "two distinct sizes"),
    ([1_000, 1_000], [1.0, 2.0], "two distinct sizes"),
    ([1_000, 2_000], [0.0, 1.0], "positive, finite"),
    ([1_000, 2_000], [1.0], "one length"),
])
def test_slope_refuses_points_that_define_no_line(sizes, costs, message):
    with pytest.raises(ValueError, match=message):
        log_log_slope(sizes, costs)


@pytest.fixture
def mini_dataset(tmp_path, monkeypatch):
    """A synthetic dataset smaller than synth-tiny (120 users, 80 items, 1,500 interactions), from the
    project's generator with a preset added for the test."""
    monkeypatch.setitem(synth.PRESETS, "mini", synth.Preset(120, 80, 1_500, clusters=4))
    return synth.generate("mini", seed=0, out=tmp_path / "mini", image_dim=16, text_dim=8)


def test_scale_end_to_end_on_two_small_datasets(tmp_path, mini_dataset):
    out = tmp_path / "scale"
    # the larger dataset first: rows come out in interaction order whatever order they are given in
    result = CliRunner().invoke(app, ["bench", "--scale", "-m", "lightgcn", "--presets",
                                      f"synth-tiny,{mini_dataset}", "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0 and result.exception is None, (result.output, result.exception)
    report = json.loads((out / "scale.json").read_text(encoding="utf-8"))
    rows = report["rows"]
    assert [r["dataset"] for r in rows] == ["synth-mini", "synth-tiny"]
    assert rows[0]["train_interactions"] < rows[1]["train_interactions"]
    assert all(r["seconds_per_epoch"] > 0 and r["eval_seconds"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    sizes = [r["train_interactions"] for r in rows]
    for key in ("seconds_per_epoch", "eval_seconds"):
        slope, intercept = log_log_slope(sizes, [r[key] for r in rows])
        assert report["slopes"][key] == {"slope": slope, "intercept": intercept}
    assert {"cpu", "cores", "threads", "torch", "date"} <= set(report["machine"])
    assert (out / "scale.png").read_bytes()[:8] == PNG_SIGNATURE
    markdown = (out / "scale.md").read_text(encoding="utf-8")
    assert markdown in result.output                                       # the table is printed
    assert "| " + " | ".join(SCALE_COLUMNS) + " |" in markdown
    assert markdown.index("| synth-mini |") < markdown.index("| synth-tiny |")
    assert f"s/epoch ∝ interactions^{report['slopes']['seconds_per_epoch']['slope']:.2f}" in markdown
    assert "Machine: " in markdown


def test_a_missing_dataset_is_refused_before_any_benchmark(tmp_path):
    out = tmp_path / "scale"
    with pytest.raises(MMDenoiseError, match="'no-such-dataset' is neither a folder nor a registered dataset"):
        bench_scale("lightgcn", presets=["synth-tiny", "no-such-dataset"], epochs=1, out=out)
    assert not out.exists()


def test_a_failing_benchmark_names_its_dataset_and_writes_nothing(tmp_path):
    """The broken dataset comes first so that the test starts one subprocess (files are only ever written
    after the last dataset's benchmark, whichever fails)."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "broken.inter").write_text("userID\titemID\tx_label\n0\t1\t0\n0\tx\t1\n")
    out = tmp_path / "scale"
    with pytest.raises(MMDenoiseError) as caught:
        bench_scale("lightgcn", presets=[str(broken), "synth-tiny"], epochs=1, out=out)
    message = str(caught.value)
    assert f"the benchmark on {broken} failed" in message
    assert "broken.inter: row 2, field itemID: not a number: 'x'" in message    # the child's last stderr line
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["-d", "synth-tiny", "--scale"], "--scale times the model on --presets, not on -d/--dataset"),
    ([], "bench needs -d/--dataset (or --scale"),
    (["-d", "synth-tiny", "--presets", "a,b"], "--presets applies to --scale only"),
    (["--scale", "--presets", "synth-tiny"], "at least two datasets"),
    (["--scale", "--presets", "synth-tiny,synth-tiny"], "listed twice"),
    (["--scale", "--presets", "synth-tiny,x", "--set", "train.nope=1"], "nope"),
])
def test_option_errors_come_before_any_benchmark(tmp_path, args, message):
    out = tmp_path / "scale"
    result = CliRunner().invoke(app, ["bench", "-m", "lightgcn", *args, "--out", str(out)] if "--scale" in args
                                else ["bench", "-m", "lightgcn", *args])
    assert isinstance(result.exception, ConfigError) and message in str(result.exception), result.exception
    assert not out.exists()


def test_an_untrained_model_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="'pop' is not trained"):
        bench_scale("pop", presets=["synth-tiny", "ml-100k"], out=tmp_path / "scale")
