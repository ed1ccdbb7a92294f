"""What a new user meets first: `mmdenoise list`, one train for both tasks, one meaning of --seeds,
progress lines on stderr (terminal or not) and a silent library."""
from __future__ import annotations

import inspect
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from mmdenoise.api import model_task, resolve_config
from mmdenoise.cli import app
from mmdenoise.data import registry
from mmdenoise.denoise import DENOISERS
from mmdenoise.errors import ConfigError
from mmdenoise.experiments.study import parse_seeds
from mmdenoise.models import MODELS
from mmdenoise.sequential import SEQUENTIAL_MODELS, resolve_sequential_config


def _lines(output: str) -> dict[str, str]:
    return {line.split()[0]: line for line in output.splitlines()[1:]}


def test_list_shows_every_registered_name_with_one_line(monkeypatch):
    runner = CliRunner()
    models = runner.invoke(app, ["list", "models"])
    assert models.exit_code == 0, models.output
    rows = _lines(models.output)
    assert set(rows) == set(MODELS) | set(SEQUENTIAL_MODELS)
    assert models.output.splitlines()[0].split() == ["name", "task", "about", "features", "paper"]
    assert rows["freedom"].split()[1] == "general" and " yes " in rows["freedom"] and "MM 2023" in rows["freedom"]
    assert rows["lightgcn"].split()[1] == "general" and " no " in rows["lightgcn"]
    assert rows["demure"].split()[1] == "sequential" and rows["seq-pop"].split()[1] == "sequential"
    denoisers = _lines(runner.invoke(app, ["list", "denoisers"]).output)
    assert set(denoisers) == set(DENOISERS) and "KDD 2024" in denoisers["damrs"] and " no " in denoisers["tce"]
    # a dataset registered later is listed without a change here (described by its builder's docstring)

    def build_example(folder):
        """An example dataset added by a plug-in."""
    monkeypatch.setitem(registry.DATASETS, "example-set", build_example)
    datasets = _lines(runner.invoke(app, ["list", "datasets"]).output)
    assert set(datasets) == set(registry.DATASETS)
    assert "An example dataset added by a plug-in." in datasets["example-set"]
    assert "943 users" in datasets["ml-100k"] and "300 users" in datasets["synth-tiny"]
    every = runner.invoke(app, ["list"])  # all three lists, each under its name
    assert every.exit_code == 0, every.output
    sections = every.output.strip().split("\n\n")
    assert [section.splitlines()[0] for section in sections] == ["models:", "denoisers:", "datasets:"]
    assert set(_lines(sections[1].split("\n", 1)[1])) == set(DENOISERS)
    bad = runner.invoke(app, ["list", "backbones"])
    assert bad.exit_code != 0 and "lists: models, denoisers, datasets" in str(bad.exception)
    typo = runner.invoke(app, ["list", "modles"])
    assert "unknown list or name 'modles' (did you mean 'models'?)" in str(typo.exception)


def test_list_a_name_shows_its_settings():
    runner = CliRunner()
    for name in [*MODELS, *SEQUENTIAL_MODELS, *DENOISERS, "train", "sequence"]:
        shown = runner.invoke(app, ["list", name])
        assert shown.exit_code == 0 and shown.output.startswith(f"{name} — "), (name, shown.output)
        assert "class hierarchy" not in shown.output and f"{name}Config(" not in shown.output  # only our docstrings
    guider = runner.invoke(app, ["list", "guider"]).output
    assert re.search(r"\ndenoiser\.threshold +0\.9 +in \[-1, 1\] +S_thres\n", guider)
    assert re.search(r"\ndenoiser\.amsc +true +true or false\n", guider)
    assert "teacher: an ID-only model name" in guider                     # the config's own docstring
    # a variant shows its own defaults and its parent's docstring
    variant = runner.invoke(app, ["list", "guider-kl"]).output
    assert re.search(r"\ndenoiser\.kd +kl +one of ot, kl, none", variant) and "teacher: an ID-only" in variant
    train = runner.invoke(app, ["list", "train"]).output
    assert re.search(r"\ntrain\.ks +\[5, 10, 20, 50\] +distinct cut-offs", train)
    assert "sequential runs start from: epochs 200, batch_size 1024, patience 10" in train
    assert "paper" not in train.splitlines()[3]                          # no paper symbol, no column
    assert runner.invoke(app, ["list", "pop"]).output.endswith("no settings\n")
    typo = runner.invoke(app, ["list", "guidr"])
    assert "unknown list or name 'guidr' (did you mean 'guider'?)" in str(typo.exception)
    assert "'ml-1m' is a dataset: `mmdenoise data info ml-1m`" in str(runner.invoke(app, ["list", "ml-1m"]).exception)


def test_command_help_paragraphs_are_one_line_each():
    # typer's rich help keeps the line breaks of every paragraph after the first, so a docstring wrapped
    # in the source comes out broken mid-sentence in `--help`
    def commands(group, path):
        for name, command in group.commands.items():
            yield from commands(command, [*path, name]) if hasattr(command, "commands") else [([*path, name], command)]
    broken = [" ".join(path) for path, command in commands(typer.main.get_command(app), [])
              if any("\n" in p for p in inspect.cleandoc(command.help or "").split("\n\n")[1:])]
    assert not broken, broken


def test_options_that_take_a_name_have_help():
    runner = CliRunner()
    for command in (["train"], ["bench"], ["study", "noise"], ["study", "ablation"], ["study", "splits"]):
        text = runner.invoke(app, [*command, "--help"], terminal_width=200).output
        assert "mmdenoise list" in text, command


def test_an_option_that_names_a_setting_points_to_set():
    def error(*args):
        result = CliRunner().invoke(app, list(args), terminal_width=200)
        assert result.exit_code == 2, result.output
        return " ".join(result.output.replace("│", " ").split())
    assert "No such option: --epochs (did you mean --set train.epochs=VALUE?)" in error(
        "train", "-d", "synth-tiny", "-m", "lightgcn", "--epochs", "3")
    assert "--n-layers (did you mean --set model_params.n_layers=VALUE?)" in error("train", "--n-layers=2")
    assert "--lr (did you mean --set train.lr=VALUE?)" in error("study", "noise", "--lr", "0.1")  # not click's --help
    assert "--drop-rate (did you mean --set denoiser_params.drop_rate=VALUE?)" in error("sweep", "s.yaml",
                                                                                         "--drop-rate", "0.1")
    assert "--max-len (did you mean --set sequence.max_len=VALUE?)" in error("train", "--max-len", "5")
    # a close option of the command wins; a command without --set, or a name that is no setting, gets no hint
    assert "No such option: --seed (Possible options: --seeds" in error("study", "noise", "--seed", "1")
    assert "--set" not in error("evaluate", "runs/x", "--epochs", "3")
    assert "did you mean" not in error("train", "--bogus")


def test_names_given_as_arguments_point_to_their_options():
    def error(*args):
        result = CliRunner().invoke(app, list(args), terminal_width=200)
        assert result.exit_code == 2, result.output
        return " ".join(result.output.replace("│", " ").split())
    assert "(did you mean --dataset ml-100k --model lightgcn?)" in error("train", "ml-100k", "lightgcn")
    assert "(did you mean --dataset ml-100k --model vbpr --denoiser tce?)" in error(
        "train", "ml-100k", "vbpr", "tce", "--seed", "3")
    assert "(did you mean --dataset ml-100k?)" in error("evaluate", "runs/x", "ml-100k")  # its one name option
    assert "(did you mean --model lightgcn?)" in error("train", "-d", "ml-100k", "lightgcn")  # given ones skipped
    # more words than the command has name options, or a command without them: click's message alone
    assert "did you mean" not in error("train", "a", "b", "c", "d")
    assert "did you mean" not in error("compare", "a", "b", "c")


def test_a_noise_command_without_noise_says_it_copies(tmp_path):
    result = CliRunner().invoke(app, ["data", "noise", "synth-tiny", "--out", str(tmp_path / "copy")],
                                terminal_width=200)
    assert result.exit_code == 0 and "no noise given (--add, --remove, --swap, --misalign)" in result.output
    noisy = CliRunner().invoke(app, ["data", "noise", "synth-tiny", "--add", "0.1", "--out", str(tmp_path / "n")])
    assert noisy.exit_code == 0 and "no noise given" not in noisy.output


def test_the_model_decides_the_task():
    assert model_task("lightgcn") == "general" and model_task("pop") == "general"
    assert model_task("demure") == "sequential" and model_task("seq-pop") == "sequential"
    assert not set(MODELS) & set(SEQUENTIAL_MODELS)            # one name, one task
    with pytest.raises(ConfigError, match="general models: pop, mf.*sequential models: seq-pop"):
        model_task("sasrec")
    # run folders of earlier builds name sequential popularity "pop"
    assert resolve_sequential_config({"task": "sequential", "model": "pop"}).model == "seq-pop"
    with pytest.raises(ConfigError, match="'demure' is a sequential model, not a denoiser: train it with `--model"):
        resolve_config({"model": "lightgcn", "denoiser": "demure"})
    with pytest.raises(ConfigError, match="'guider' is a denoiser, not a model: .*--denoiser guider`"):
        model_task("guider")
    with pytest.raises(ConfigError, match="'tce' is a denoiser, not a model"):
        resolve_config({"model": "tce"})                     # the library's own resolver says the same
    missing = CliRunner().invoke(app, ["train", "-d", "synth-tiny"])  # main() prints it as one error: line
    assert isinstance(missing.exception, ConfigError) and "missing the model (-m/--model" in str(missing.exception)
    from mmdenoise.api import train
    with pytest.raises(ConfigError, match=r"train: missing the dataset \(-d/--dataset, or dataset= in Python"):
        train(model="mf")                                    # the library has no default dataset either
    with pytest.raises(ConfigError, match=r"a dataset is a Dataset, a registered name or a folder path, got 123"):
        train(123, "mf")
    with pytest.raises(ConfigError, match=r"train: out is the run folder's path, got 5 \(int\)"):
        train("synth-tiny", "mf", out=5)                     # not pathlib's "expected str, bytes or os.PathLike"


def test_studies_name_the_studies_of_the_other_task(tmp_path):
    from mmdenoise.experiments.study import ablation_study, noise_study
    from mmdenoise.sequential.study import split_study
    with pytest.raises(ConfigError, match="demure is a sequential model; the noise study runs general models "
                                          r"\(for sequential models: study sensitivity, study splits\)"):
        noise_study("synth-tiny", "lightgcn,demure", out=tmp_path / "n")
    with pytest.raises(ConfigError, match="the ablation study runs general models"):
        ablation_study("synth-tiny", "base", "damrs", out=tmp_path / "a")
    with pytest.raises(ConfigError, match="lightgcn is a general model; .*: study noise, study ablation"):
        split_study("synth-seq-tiny", ["base", "lightgcn"], tmp_path / "s")


def test_seeds_mean_the_same_everywhere():
    assert parse_seeds("3") == parse_seeds(3) == [0, 1, 2]
    assert parse_seeds("0,4,7") == parse_seeds([0, 4, 7]) == [0, 4, 7]
    assert parse_seeds("4,") == [4] and parse_seeds((0,)) == [0]
    for bad, problem in [("0", "a count must be >= 1"), ("x", "expected a count"), ("1,1", "distinct"),
                         ("-1,2", "non-negative"), ("1,a", "seeds are integers")]:
        with pytest.raises(ConfigError, match=problem):
            parse_seeds(bad)


def _env(tmp_path) -> dict:
    """A data home of the test's own; this checkout's package first (the subprocess runs in tmp_path)."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "MMDENOISE_HOME": str(tmp_path / "home"),
            "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _cli(args, tmp_path):
    return subprocess.run([sys.executable, "-m", "mmdenoise.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=_env(tmp_path))


def test_progress_lines_without_a_terminal_and_a_silent_library(tmp_path):
    args = ["train", "-d", "synth-tiny", "-m", "mf", "--set", "train.epochs=2", "--set", "train.threads=1",
            "--out", str(tmp_path / "run")]
    out = _cli(args, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "building dataset synth-tiny" in out.stderr                 # first use builds it, and says so
    assert "train mf + none on synth-tiny (seed 0)" in out.stderr
    assert "epoch 1/2, loss" in out.stderr and re.search(r"best epoch [12] of 2,", out.stdout)
    # the quiet CLI run and the library run only read the built dataset: they run side by side
    pending = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                env=_env(tmp_path)) for command in (
        [sys.executable, "-m", "mmdenoise.cli", *args[:-1], str(tmp_path / "run2"), "-q"],   # -q anywhere
        [sys.executable, "-c", "from mmdenoise import train; "
         f"train('synth-tiny', 'mf', overrides=['train.epochs=2', 'train.threads=1'], out={str(tmp_path / 'r3')!r})"])]
    (_, quiet_err), (library_out, library_err) = [p.communicate(timeout=300) for p in pending]
    assert pending[0].returncode == 0 and quiet_err == "", quiet_err
    assert pending[1].returncode == 0 and library_err == "" and library_out == "", library_err


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_workers_wait_passively_unless_the_user_said_otherwise(given, expected, tmp_path):
    """Set by the package before torch loads its OpenMP runtime (spinning workers slow every epoch down
    several times when another process shares the cores); torch is not loaded by the package's import."""
    env = {k: v for k, v in _env(tmp_path).items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", "import os, sys, mmdenoise; "
                          "print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.split() == [expected, "False"], out.stderr


def test_listing_a_name_does_not_load_scipy_stats(tmp_path):
    """scipy.stats (~0.7 s to import) serves the tests and detection metrics only: `mmdenoise list NAME`
    answers without it (the significance, detection and hashing modules import it where they use it)."""
    out = subprocess.run([sys.executable, "-c", "import sys; from mmdenoise.cli import main; sys.argv = "
                          "['mmdenoise', 'list', 'guider']\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
                          "print('scipy.stats' in sys.modules)"],
                         capture_output=True, text=True, timeout=120, env=_env(tmp_path))
    assert "S_thres" in out.stdout and out.stdout.split()[-1] == "False", out.stdout[-500:] + out.stderr


class _FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, option, value):
        self.calls.append((option, value))
        return 1


def test_freed_memory_is_kept_for_reuse_unless_the_user_set_the_allocator():
    """glibc's mmap and trim thresholds (page faults of item-sized tensors dominated a DA-MRS step on
    Book-Crossing); a threshold the user set is kept, a C library without mallopt is left alone."""
    import mmdenoise
    libc = _FakeLibc()
    assert mmdenoise._keep_freed_memory({}, libc)
    assert libc.calls == [(-3, 32 << 20), (-1, 256 << 20)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
    for variable in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        untouched = _FakeLibc()
        assert not mmdenoise._keep_freed_memory({variable: "131072"}, untouched) and untouched.calls == []
    assert not mmdenoise._keep_freed_memory({}, object())  # no mallopt (not glibc)
    failing = _FakeLibc()
    failing.mallopt = lambda option, value: 0
    assert not mmdenoise._keep_freed_memory({}, failing)


def test_a_c_library_that_cannot_be_opened_is_left_alone(monkeypatch):
    """Windows' loader refuses ``CDLL(None)`` with a TypeError (other systems may raise OSError): importing
    mmdenoise must not fail there, it just leaves the allocator as it is."""
    import ctypes

    import mmdenoise
    for error in (TypeError("expected str, bytes or os.PathLike object, not NoneType"), OSError("no libc")):
        def refuse(name, error=error):
            raise error
        monkeypatch.setattr(ctypes, "CDLL", refuse)
        assert not mmdenoise._keep_freed_memory({})


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_glibcs_mallopt_takes_both_values():
    import ctypes

    import mmdenoise
    assert mmdenoise._keep_freed_memory({}, ctypes.CDLL(None))  # the real mallopt takes both values


def test_the_demo_takes_a_thread_count(monkeypatch, tmp_path, capsys):
    """``make demo THREADS=1`` on a shared machine: every run of the demo gets the cap; a negative count is
    refused before anything runs."""
    import torch

    from mmdenoise.experiments import demo
    ran = []
    monkeypatch.setattr(demo, "quick_demo", lambda *args: ran.append(torch.get_num_threads()))
    from threadpoolctl import threadpool_limits
    before = torch.get_num_threads()
    try:
        with threadpool_limits(limits=None):  # the BLAS pools as they were, after the cap, for later tests
            demo.main(["--threads", "1", "--quiet", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(before)
    assert ran == [1]
    with pytest.raises(SystemExit):
        demo.main(["--threads", "-1"])
    assert "--threads must be >= 0, got -1" in capsys.readouterr().err
