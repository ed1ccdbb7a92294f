"""Every user mistake and every OS failure: one ``error:`` line, exit 2, no traceback, nothing lost (issue 23).

The CLI runs in-process through ``cli.main`` (what the ``mmdenoise`` script
calls), except the full-disk cases, which run a subprocess under ``ulimit -f``.
"""
from __future__ import annotations

import errno
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmdenoise import cli
from mmdenoise.api import evaluate_run, train
from mmdenoise.data import write_mmrec
from mmdenoise.errors import ConfigError, RunError, StorageError
from mmdenoise.training import record

FAST = ["--set", "train.progress=false", "--set", "train.batch_size=256", "--set", "train.epochs=2"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tests.planted import planted_dataset
    return write_mmrec(planted_dataset(n_users=120, n_items=80, seed=0), tmp_path_factory.mktemp("data") / "small")


@pytest.fixture(scope="module")
def mf_run(data, tmp_path_factory):
    """A finished MF run (2 epochs)."""
    out = tmp_path_factory.mktemp("runs") / "mf"
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(out), *FAST)
    assert code == 0, err
    return out


def mmdenoise(*args: str, capsys=None) -> tuple[int, str, str]:
    """Run the CLI entry point in-process: (exit code, stdout, stderr)."""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["mmdenoise", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def assert_clear(code: int, err: str, *parts: str) -> str:
    """Exit 2, stderr ends in one line starting ``error:`` containing ``parts`` (progress log lines
    may come before it), no traceback."""
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and err.rstrip().endswith(lines[0]), err
    assert "Traceback" not in err and "weights_only=False" not in err and "allow_pickle=True" not in err
    for part in parts:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """name -> sha256 of every file under ``folder`` (to show a refusal changed nothing)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------- class 1: resume trusts nothing
@pytest.mark.parametrize("args, message", [
    (["-m", "lightgcn"], "model: mf, not lightgcn"),
    (["--denoiser", "tce"], "denoiser: none, not tce"),
    (["--seed", "4"], "seed: 0, not 4"),
    (["--set", "train.lr=0.5"], "train.lr: 0.001, not 0.5"),
    (["--set", "embedding_size=8"], "model_params.embedding_size: 64, not 8"),
    (["-m", "base"], "it holds a general run, not a sequential one"),
])
def test_resume_with_other_settings_is_refused_and_changes_nothing(mf_run, args, message):
    before = snapshot(mf_run)
    code, _, err = mmdenoise("train", "--out", str(mf_run), "--resume", *args, *FAST)
    assert_clear(code, err, "cannot resume", str(mf_run), message)
    assert snapshot(mf_run) == before


def test_resume_on_other_data_is_refused_and_changes_nothing(mf_run, tmp_path):
    from tests.planted import planted_dataset
    other = write_mmrec(planted_dataset(n_users=120, n_items=80, seed=1), tmp_path / "other")
    before = snapshot(mf_run)
    code, _, err = mmdenoise("train", "-d", str(other), "--out", str(mf_run), "--resume", *FAST)
    assert_clear(code, err, "cannot resume", "trained on dataset fingerprint")
    assert snapshot(mf_run) == before
    valid, _ = evaluate_run(mf_run)   # the finished run still evaluates
    assert valid.metrics["recall@20"] >= 0


@pytest.mark.skipif(sys.platform == "win32", reason="folder locks are POSIX flock")
@pytest.mark.parametrize("rerun", [["-d", "DATA", "-m", "mf"], ["--resume"]])
def test_a_folder_another_process_is_writing_is_refused_and_changes_nothing(mf_run, data, rerun):
    """A second writer (another study or command on the same folder: the same run, a rerun that would
    replace it, or a resume) stops before it removes or writes anything while the first holds the folder."""
    import fcntl
    import os
    before = snapshot(mf_run)
    holder = os.open(mf_run, os.O_RDONLY)  # what a process training into the folder holds
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        args = [str(data) if a == "DATA" else a for a in rerun]
        code, _, err = mmdenoise("train", "--out", str(mf_run), *args, *FAST)
        assert_clear(code, err, str(mf_run), "is being written by another process")
        assert snapshot(mf_run) == before
    finally:
        os.close(holder)
    code, _, err = mmdenoise("train", "--out", str(mf_run), "--resume", *FAST)  # released: it goes on
    assert code == 0, err


def test_resume_takes_unstated_settings_from_the_folder(mf_run, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(mf_run, copy)
    code, out, err = mmdenoise("train", "--out", str(copy), "--resume", "--set", "train.progress=false")
    assert code == 0, err
    assert json.loads((copy / record.RESULT_FILE).read_text())["model"] == "mf"


@pytest.mark.parametrize("make, message", [
    (lambda d: None, "does not exist"),
    (lambda d: d.mkdir(), "holds no readable config.yaml"),
    (lambda d: (d.mkdir(), (d / "config.yaml").write_text("model: mf\ntrain: {epochs: 2, batch_size: 256}\n")),
     "no checkpoint.pt"),
])
def test_resume_of_a_folder_without_a_run(data, tmp_path, make, message):
    run = tmp_path / "r"
    make(run)
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(run), "--resume", *FAST)
    assert_clear(code, err, "cannot resume", message)


# -------------------------------------------------------------------- class 2: --out never mixes runs
def test_out_holding_another_run_is_refused(mf_run):
    before = snapshot(mf_run)
    code, _, err = mmdenoise("train", "-d", str(mf_run.parent), "-m", "lightgcn", "--out", str(mf_run), *FAST)
    assert code == 2 and snapshot(mf_run) == before


def test_out_holding_another_run_lists_the_difference(data, mf_run):
    before = snapshot(mf_run)
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--denoiser", "tce", "--out", str(mf_run), *FAST)
    assert_clear(code, err, "holds another run", "denoiser: none, not tce", "--overwrite")
    assert snapshot(mf_run) == before


def test_overwrite_replaces_the_old_run_entirely(data, tmp_path):
    out = tmp_path / "r"
    assert mmdenoise("train", "-d", str(data), "-m", "mf", "--denoiser", "tce", "--out", str(out), *FAST)[0] == 0
    assert (out / record.SCORES_FILE).exists()
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(out), "--overwrite", *FAST)
    assert code == 0, err
    assert not (out / record.SCORES_FILE).exists()   # the old denoiser's scores are gone
    assert json.loads((out / record.RESULT_FILE).read_text())["denoiser"] == "none"


def test_same_run_again_is_allowed(data, tmp_path):
    out = tmp_path / "r"
    for _ in range(2):
        code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(out), *FAST)
        assert code == 0, err


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_dataset_folder_is_never_a_run_folder(data, overwrite):
    before = snapshot(data)
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(data), *overwrite, *FAST)
    assert_clear(code, err, "holds a dataset")
    assert snapshot(data) == before


def test_a_folder_of_other_files_is_refused(data, tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("x")
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(out), *FAST)
    assert_clear(code, err, "is not empty and holds no mmdenoise run", "todo.txt")
    assert [p.name for p in out.iterdir()] == ["todo.txt"]


def test_a_sweep_trial_record_does_not_block_its_run(data, tmp_path):
    out = tmp_path / "trial"
    out.mkdir()
    (out / "trial.json").write_text("{}")
    assert mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(out), *FAST)[0] == 0


# ------------------------------------------------------------ class 3: settings, before any file
@pytest.mark.parametrize("setting, message", [
    ("train.lr=-1", "train.lr: must be ≥ 0"),
    ("train.weight_decay=-0.5", "train.weight_decay: must be ≥ 0"),
    ("train.batch_size=0", "train.batch_size: must be ≥ 1"),
    ("train.eval_every=0", "train.eval_every: must be ≥ 1"),
    ("train.valid_metric=recal@20", "train.valid_metric: must be a metric@k"),
    ("train.device=tpu", "train.device: must be auto, cpu"),
    ("train.device=cuda:7", "train.device: cuda:7 is not available"),
    ("seed=-2", "seed: must be in [0, "),
    ("train.epochs=-1", "train.epochs: must be ≥ 1"),
    ("embedding_size=0", "embedding_size: must be ≥ 1"),
])
def test_bad_settings_fail_before_any_file(data, tmp_path, setting, message):
    out = tmp_path / "r"
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(out), "--set", setting, *FAST[:2])
    assert_clear(code, err, message)
    assert not out.exists()


def test_freedom_dropout_one_fails_before_training(data, tmp_path):
    out = tmp_path / "r"
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "freedom", "--set", "dropout=1", "--out", str(out), *FAST)
    assert_clear(code, err, "model_params (freedom).dropout: must be in [0, 1)")
    assert not out.exists()


def test_model_that_cannot_build_writes_nothing(tmp_path):
    from tests.planted import planted_dataset
    bare = write_mmrec(planted_dataset(n_users=40, n_items=30, seed=0, modalities={}), tmp_path / "bare")
    out = tmp_path / "r"
    code, _, err = mmdenoise("train", "-d", str(bare), "-m", "vbpr", "--out", str(out), *FAST)
    assert_clear(code, err, "needs item features")
    assert not out.exists()


def test_api_raises_the_same_typed_errors(data, tmp_path):
    with pytest.raises(ConfigError, match="train.batch_size: must be ≥ 1"):
        train(str(data), "mf", overrides=["train.batch_size=0"], out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
    from mmdenoise.sequential.api import train_sequential
    with pytest.raises(ConfigError, match="sequence.max_len: must be ≥ 1"):
        train_sequential(str(data), "base", overrides=["sequence.max_len=0"], out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_nan_before_any_checkpoint_does_not_claim_one(data, tmp_path, monkeypatch):
    from mmdenoise.errors import TrainingError
    from mmdenoise.models.mf import MF
    monkeypatch.setattr(MF, "regularization", lambda self, *a: self.user_embedding.weight.sum() * float("nan"))
    with pytest.raises(TrainingError, match="no checkpoint was written") as info:
        train(str(data), "mf", overrides=["train.progress=false"], out=tmp_path / "r")
    assert "best checkpoint so far is kept" not in str(info.value)


# ------------------------------------------------------------------- class 4: files and the OS
@pytest.mark.parametrize("make_config, message", [
    (lambda p: p / "missing.yaml", "missing.yaml: no such file"),
    (lambda p: p, "is a folder, not a YAML file"),
    (lambda p: (p / "bin.yaml", (p / "bin.yaml").write_bytes(b"\x00\xff\xfe"))[0], "not UTF-8"),
    (lambda p: (p / "bad.yaml", (p / "bad.yaml").write_text("train: [1,\n"))[0], "invalid YAML"),
])
def test_bad_config_files(data, tmp_path, make_config, message):
    code, _, err = mmdenoise("train", "-d", str(data), "--config", str(make_config(tmp_path)),
                             "--out", str(tmp_path / "r"), *FAST)
    assert_clear(code, err, message)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("out, message", [
    ("/proc/mmdenoise-run", "nothing of the run was kept"),
    ("FILE", "is a file, not a folder"),
    ("FILE/below", "Not a directory"),
])
def test_impossible_out(data, tmp_path, out, message):
    (tmp_path / "FILE").write_text("x")
    target = out.replace("FILE", str(tmp_path / "FILE"))
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--out", target, *FAST)
    assert_clear(code, err, message)


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[:300]),                           # truncated
    lambda p: p.write_bytes(b"\x00" * 64),                                   # garbage
    lambda p: p.write_bytes(b""),                                            # empty
    lambda p: __import__("torch").save({"weights": __import__("torch").zeros(3)}, p),   # another program's
    lambda p: p.write_bytes(__import__("pickle").dumps(__import__("tests.conftest").conftest.PickleTrap(
        p.parent / "PWNED"))),                                               # malicious
])
def test_damaged_checkpoint(mf_run, tmp_path, damage):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(mf_run, run)
    damage(run / record.CHECKPOINT_FILE)
    code, _, err = mmdenoise("evaluate", str(run))
    assert_clear(code, err, "checkpoint.pt is damaged or not a mmdenoise checkpoint")
    assert not (run / "PWNED").exists()
    code, _, err = mmdenoise("train", "--out", str(run), "--resume", *FAST)
    assert_clear(code, err, "checkpoint.pt is damaged or not a mmdenoise checkpoint")


@pytest.mark.parametrize("make, message", [
    (lambda run: run / "nope", "no such run folder"),
    (lambda run: (run / "empty").mkdir() or run / "empty", "is not a finished run folder (no config.yaml)"),
    (lambda run: (run / record.CHECKPOINT_FILE).unlink() or run, "checkpoint.pt: missing"),
])
def test_evaluate_without_a_run(mf_run, tmp_path, make, message):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(mf_run, run)
    code, _, err = mmdenoise("evaluate", str(make(run)))
    assert_clear(code, err, message)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_text(p.read_text()[:40]), "result.json is damaged"),
    (lambda p: p.write_text("null"), "result.json is damaged"),
    (lambda p: p.write_bytes(b"\xff\xfe"), "result.json is damaged"),
])
def test_report_on_a_damaged_result(mf_run, tmp_path, damage, message):
    import shutil
    run = tmp_path / "runs" / "mf"
    shutil.copytree(mf_run, run)
    damage(run / record.RESULT_FILE)
    code, _, err = mmdenoise("report", str(tmp_path / "runs"))
    assert_clear(code, err, message)


@pytest.mark.parametrize("content", [b"PK\x03\x04broken", b"", b"not a zip"])
def test_damaged_per_user_file(mf_run, tmp_path, content):
    import shutil

    from mmdenoise.eval.pairing import paired_per_user
    run = tmp_path / "runs" / "mf"
    shutil.copytree(mf_run, run)
    (run / record.PER_USER_FILE).write_bytes(content)
    with pytest.raises(RunError, match="per_user.npz is damaged"):
        paired_per_user([run], [mf_run], "recall@20")


def test_full_disk_during_training_keeps_no_half_run(data, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "r" / record.METRICS_FILE))
    monkeypatch.setattr(record, "write_metrics", full)
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(tmp_path / "r"), *FAST)
    assert_clear(code, err, "No space left on device", "nothing of the run was kept")
    assert not (tmp_path / "r").exists()


def test_full_disk_after_a_checkpoint_keeps_it_for_resume(data, tmp_path, monkeypatch):
    original = record.write_result

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(record, "write_result", full)
    with pytest.raises(StorageError, match="the last checkpoint is kept: resume with --resume"):
        train(str(data), "mf", overrides=["train.progress=false", "train.epochs=2"], out=tmp_path / "r")
    assert {p.name for p in (tmp_path / "r").iterdir()} >= {"config.yaml", "checkpoint.pt"}
    monkeypatch.setattr(record, "write_result", original)
    run = train(out=tmp_path / "r", resume=True, progress=False)
    assert run.result["model"] == "mf" and (tmp_path / "r" / record.RESULT_FILE).exists()


def test_full_disk_in_a_rerun_of_the_same_run_keeps_nothing_half(data, tmp_path, monkeypatch):
    out = tmp_path / "r"
    assert mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(out), *FAST)[0] == 0

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(record, "save_checkpoint", full)
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--out", str(out), *FAST)
    assert_clear(code, err, "nothing of the run was kept")
    assert list(out.iterdir()) == []      # no half run (the same settings rerun gives the old one back)


def _under_file_limit(args: list[str], cwd: Path, blocks: int = 64) -> subprocess.CompletedProcess:
    """``mmdenoise args`` in a subprocess whose files may not exceed ``blocks`` × 512 bytes (ulimit -f)."""
    import os
    import shlex

    import mmdenoise
    command = " ".join([f"ulimit -f {blocks};", shlex.quote(sys.executable), "-m", "mmdenoise.cli",
                        *map(shlex.quote, args)])
    env = {**os.environ, "PYTHONPATH": str(Path(mmdenoise.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_file_size_limit_during_data_synth_leaves_no_dataset(tmp_path):
    done = _under_file_limit(["data", "synth", "--preset", "tiny", "--out", "tiny"], tmp_path)
    assert_clear(done.returncode, done.stderr, "File too large")
    assert list(tmp_path.iterdir()) == []


def test_file_size_limit_during_train_leaves_no_run(data, tmp_path):
    done = _under_file_limit(["train", "-d", str(data), "-m", "mf", "--out", "r", *FAST], tmp_path, blocks=8)
    assert_clear(done.returncode, done.stderr, "File too large", "nothing of the run was kept")
    assert list(tmp_path.iterdir()) == []


def test_debug_shows_the_traceback(data, tmp_path):
    code, _, err = mmdenoise("--debug", "train", "-d", str(data), "--set", "train.lr=-1", "--out", str(tmp_path / "r"))
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


def test_huge_values_give_a_bounded_message(data, tmp_path):
    code, _, err = mmdenoise("train", "-d", str(data), "-m", "mf", "--set", "train.valid_metric=" + "x" * 200_000,
                             "--out", str(tmp_path / "r"))
    assert len(assert_clear(code, err, "valid_metric")) < 400


# --------------------------------------------------------------------- class 5: bounded YAML
def test_alias_bomb_config_answers_at_once(data, tmp_path):
    import time

    from tests.test_config import ALIAS_BOMB
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)
    t0 = time.perf_counter()
    code, _, err = mmdenoise("train", "-d", str(data), "--config", str(tmp_path / "bomb.yaml"),
                             "--out", str(tmp_path / "r"))
    assert_clear(code, err, "expands (aliases followed) to more than")
    assert time.perf_counter() - t0 < 5 and not (tmp_path / "r").exists()


# ------------------------------------------------------- class 8: a noised copy is named as such
def test_evaluating_a_run_of_a_noised_copy_on_the_clean_data_says_so(data, tmp_path):
    from mmdenoise.data import load_dataset
    from mmdenoise.data.noise import inject_noise
    noisy = inject_noise(load_dataset(data), add=0.1, seed=0)
    run = train(noisy, "mf", overrides=["train.progress=false", "train.epochs=1"], out=tmp_path / "r")
    assert run.result["dataset"]["noise"]["add"] == 0.1
    with pytest.raises(RunError, match=r"trained on a noised copy of planted \(noise add 0.1, seed 0"):
        evaluate_run(tmp_path / "r", load_dataset(data))
    valid, _ = evaluate_run(tmp_path / "r", noisy)
    assert np.isclose(valid.metrics["recall@20"], run.valid["recall@20"])
