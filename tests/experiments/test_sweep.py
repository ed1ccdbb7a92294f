"""Sweeps: spec validation, deterministic trials, resume after SIGKILL, and the Ray backend agreeing with local."""
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from mmdenoise.errors import ConfigError
from mmdenoise.experiments.runner import trial_name
from mmdenoise.experiments.spec import Distribution, expand, load_spec, parse_spec
from mmdenoise.experiments.sweep import sweep
from mmdenoise.training import record

THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny synthetic preset with small feature matrices (fast to read)."""
    from mmdenoise.data.synth import generate
    return generate("tiny", seed=0, out=tmp_path_factory.mktemp("data") / "tiny", image_dim=32, text_dim=16)


def _spec(folder, tiny, epochs=3, **extra):
    spec = {"dataset": str(tiny), "model": "lightgcn", "seed": 0, "set": {"train.epochs": epochs},
            "space": {"train.lr": [0.001, 0.01], "n_layers": [1, 2]},
            "objective": {"metric": "recall@20", "mode": "max"}, **extra}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# ------------------------------------------------------------ validation
@pytest.mark.parametrize("change, message", [
    ({"spaec": {}}, r"unknown key\(s\) \['spaec'\]"),
    ({"train.epochs": 3}, r"'train.epochs' is a run setting, not a spec key: a fixed one goes under `set:`"),
    ({"space": {"train.lr": {"normal": [0, 1]}}}, r"space\.train\.lr: unknown distribution 'normal'"),
    ({"space": {"train.lr": {"loguniform": [0, 1]}}}, r"space\.train\.lr\.loguniform: bounds must be > 0"),
    ({"space": {"n_layers": {"int": [3, 1]}}}, r"space\.n_layers\.int: expected integers \[low, high\]"),
    ({"space": {"train.lr": 0.01}}, r"space\.train\.lr: expected a list of values"),
    ({"space": {"n_layerz": [1, 2]}}, r"space\.n_layerz: .*'n_layerz' is not a known key"),
    ({"space": {"train.lr": ["fast"]}}, r"space\.train\.lr: .*expected a number"),
    ({"space": {"train.lr": [0.001, 0.01, 0.001]}}, r"space\.train\.lr: 0\.001 is listed more than once in the grid"),
    ({"space": {"train.ks": [[10, 20], [10, 20]]}}, r"space\.train\.ks: \[10, 20\] is listed more than once"),
    ({"samples": 3}, r"samples: 3 random draws need a distribution"),
    ({"budget": 0}, r"budget: expected an integer >= 1 \(trials at most\), got 0"),
    ({"objective": {"metric": "recall@21"}}, r"objective\.metric: unknown metric 'recall@21'"),
    ({"objective": {"metric": "recall@20", "goal": "max"}}, r"objective: unknown key\(s\) \['goal'\]"),
])
def test_spec_errors_name_the_key(tmp_path, tiny, change, message):
    raw = yaml.safe_load(_spec(tmp_path, tiny).read_text())
    raw.update(change)
    with pytest.raises(ConfigError, match=message):
        expand(parse_spec(raw, "spec.yaml"))


def test_spec_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="missing.yaml: sweep spec not found"):
        load_spec(tmp_path / "missing.yaml")


def test_random_trials_are_deterministic_and_in_bounds(tmp_path, tiny):
    raw = yaml.safe_load(_spec(tmp_path, tiny).read_text())
    raw.update(space={"train.lr": [0.001, 0.01], "train.weight_decay": {"loguniform": [1e-6, 1e-3]},
                      "n_layers": {"int": [1, 3]}, "denoiser": {"choice": ["none", "tce"]}},
               samples=5, search_seed=7)
    first, again = expand(parse_spec(raw)), expand(parse_spec(raw))
    assert [t["name"] for t in first] == [t["name"] for t in again]
    assert len(first) == 10 and len({t["name"] for t in first}) == 10
    for t in first:
        p = t["params"]
        assert 1e-6 <= p["train.weight_decay"] <= 1e-3 and p["n_layers"] in (1, 2, 3)
        assert t["name"] == trial_name(p)
        assert ("train.weight_decay", p["train.weight_decay"]) in t["overrides"]
    other = expand(parse_spec({**raw, "search_seed": 8}))
    assert [t["name"] for t in other] != [t["name"] for t in first]
    # a budget keeps a reproducible subset, in expansion order
    capped = expand(parse_spec({**raw, "budget": 4}))
    assert len(capped) == 4 and [t["name"] for t in capped] == [t["name"] for t in expand(parse_spec({**raw,
                                                                                                  "budget": 4}))]
    assert [t["name"] for t in capped] == [t["name"] for t in first if t in capped]


def test_distribution_draws_cover_the_integer_range():
    import numpy as np
    rng = np.random.default_rng(0)
    assert {Distribution("int", (1, 3)).draw(rng) for _ in range(200)} == {1, 2, 3}


# ------------------------------------------------------------ running
def _cli(*args):
    return [sys.executable, "-m", "mmdenoise.cli", *args]


def test_sigkill_then_restart_skips_finished_trials_and_matches_an_uninterrupted_sweep(tmp_path, tiny):
    # 10 epochs (a checkpoint after each) keep a trial running long enough for the kill to land inside it
    spec = _spec(tmp_path, tiny, epochs=10, space={"train.lr": [0.001, 0.005, 0.01]})
    out = tmp_path / "killed"
    env = {**os.environ, **THREADS}
    proc = subprocess.Popen(_cli("sweep", str(spec), "--out", str(out)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120

    def partial():  # trial folders with a checkpoint but no result yet
        return [p.parent for p in out.glob(f"*/{record.CHECKPOINT_FILE}")
                if not (p.parent / record.RESULT_FILE).exists()]

    # kill once one trial is finished and the next one is part-way (it has a checkpoint)
    while not (list(out.glob(f"*/{record.RESULT_FILE}")) and partial()):
        assert proc.poll() is None, f"the sweep ended before it was killed: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no trial finished in time"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob(f"*/{record.RESULT_FILE}")}
    interrupted = [p.name for p in partial()]
    trials = [t["name"] for t in expand(load_spec(spec))]
    assert 1 <= len(finished) < len(trials) and interrupted  # the kill interrupted the sweep mid-trial

    restarted = sweep(spec, out)  # the restart, in this process (it reads only the folder)
    status = {t["name"]: t["status"] for t in restarted.trials}
    for name, mtime in finished.items():
        assert (out / name / record.RESULT_FILE).stat().st_mtime_ns == mtime  # not retrained
        assert status[name] == "skipped"
    assert all(status[name] == "resumed" for name in interrupted)  # from its checkpoint

    reference = sweep(spec, tmp_path / "uninterrupted")
    resumed = yaml.safe_load((out / "sweep.json").read_text())
    assert resumed["best"]["name"] == reference.best["name"]
    assert resumed["best"]["params"] == reference.best["params"]
    assert {t["name"]: t["objective"] for t in resumed["trials"]} == \
        pytest.approx({t["name"]: t["objective"] for t in reference.trials}, abs=1e-9)
    assert set(trials) == {t["name"] for t in reference.trials}

    # the same folder with other fixed settings is refused, not silently reused
    with pytest.raises(ConfigError, match="run with other settings"):
        sweep(spec, tmp_path / "uninterrupted", overrides=["train.epochs=5"])


def test_ray_backend_gives_the_same_best_trial_as_local(tmp_path, tiny):
    spec = _spec(tmp_path, tiny, epochs=3)
    local = sweep(spec, tmp_path / "local", workers=2)  # a pool of 2 processes
    assert {t["status"] for t in local.trials} == {"trained"}
    ray_result = sweep(spec, tmp_path / "ray", backend="ray", workers=2)
    assert ray_result.best["name"] == local.best["name"]
    assert ray_result.best["params"] == local.best["params"]
    assert [t["name"] for t in ray_result.trials] == [t["name"] for t in local.trials]
    assert [t["objective"] for t in ray_result.trials] == pytest.approx([t["objective"] for t in local.trials],
                                                                        abs=1e-6)
    summary = yaml.safe_load((tmp_path / "ray" / "sweep.json").read_text())
    assert summary["best"]["objective"] == pytest.approx(local.best["objective"], abs=1e-6)
    assert "| 1 | " + local.best["name"] in (tmp_path / "ray" / "sweep.md").read_text()


def test_importing_mmdenoise_never_imports_ray():
    code = ("import sys, mmdenoise, mmdenoise.cli, mmdenoise.experiments.sweep, mmdenoise.experiments.study; "
            "sys.exit(any(m == 'ray' or m.startswith('ray.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], env={**os.environ, **THREADS}).returncode == 0


def test_cli_spec_error_is_one_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: lightgcn\nspace: {n_layers: {normal: [1, 2]}}\n")
    out = subprocess.run(_cli("sweep", str(spec), "--out", str(tmp_path / "s")), capture_output=True, text=True,
                         env={**os.environ, **THREADS}, timeout=120)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"error: {spec}: space.n_layers: unknown distribution 'normal'" in out.stderr
