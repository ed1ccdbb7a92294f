"""Claiming a run folder : checks made before anything is written, and clean failure.

A new run goes only into a folder that does not exist, is empty, holds only
what a sweep writes ahead of its run (``trial.json``), or holds the same run
(same result-deciding settings: a rerun replaces it); another run's folder
only with ``overwrite`` (its run files are removed first, nothing else is);
a dataset folder never. A resume continues only the run the folder holds:
same model, denoiser, seed and settings, and a checkpoint trained on the
same data (checked by the caller, which has loaded the data). A refused
resume changes nothing in the folder.

:func:`writing_run` wraps the writing part: one process at a time (an exclusive
lock on the folder, so a second study or command aimed at the same folder stops
with a RunError before it removes or writes anything); and if the operating
system refuses a write (full disk, file size limit), a fresh run that never
wrote a checkpoint leaves nothing behind, and one that did keeps it for
``--resume``.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from ..config import load_yaml, result_settings, short
from ..errors import MMDenoiseError, RunError, StorageError, describe_os_error
from . import record

#: files other tools put in a run folder before the run starts (a sweep's or study's trial record)
PRE_RUN_FILES = ("trial.json",)


def is_dataset_folder(folder: Path) -> bool:
    """Whether ``folder`` holds dataset files (MMRec/RecBole ``.inter``, features, MMSSL ``train.json``)."""
    return (any(folder.glob("*.inter")) or any(folder.glob("*_feat.npy"))
            or any((folder / name).exists() for name in ("mmdenoise.json", "noise.json", "train.json")))


def describe_run(config: Mapping[str, Any]) -> str:
    """``a run of mf + none, seed 0, on ml-100k`` for a raw config mapping."""
    def plain(key: str) -> str:
        text = str(config.get(key))
        return text if len(text) <= 60 else text[:57] + "..."
    denoiser = f" + {plain('denoiser')}" if "denoiser" in config else ""
    return f"a run of {plain('model')}{denoiser}, seed {plain('seed')}, on {plain('dataset')}"


def _shown(value: Any) -> str:
    return value if isinstance(value, str) and len(value) <= 60 else short(value)


def listed(changes: list[str], at_most: int = 4) -> str:
    """``a; b; c`` (and ``and N more``): differences for a one-line message."""
    more = f"; and {len(changes) - at_most} more" if len(changes) > at_most else ""
    return "; ".join(changes[:at_most]) + more


def differences(stored: Mapping[str, Any], new: Mapping[str, Any], config_cls: type,
                ignore: tuple[str, ...] = ()) -> list[str]:
    """``key: stored, not new`` for every result-deciding setting that differs (dotted keys); both
    mappings resolved (every field present), so a default left out is not a difference."""
    a, b = result_settings(config_cls, stored), result_settings(config_cls, new)
    out = []

    def walk(x: Any, y: Any, prefix: str) -> None:
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            for key in list(x) + [k for k in y if k not in x]:
                if f"{prefix}{key}" not in ignore:
                    walk(x.get(key), y.get(key), f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix[:-1]}: {_shown(x)}, not {_shown(y)}")

    walk(a, b, "")
    return out


Resolve = Callable[[Mapping[str, Any]], Any]


def stored_config(run_dir: Path, resolve: Resolve) -> Any:
    """The run folder's config.yaml through ``resolve`` (raw mapping -> e.g. the resolved dict, defaults
    filled in); None if it has none, or it is unreadable or not a config of this task."""
    if not (run_dir / record.CONFIG_FILE).is_file():
        return None
    try:
        return resolve(load_yaml(run_dir / record.CONFIG_FILE))
    except MMDenoiseError:
        return None


def check_new_run(run_dir: Path, config: Mapping[str, Any], config_cls: type, resolve: Resolve,
                  overwrite: bool) -> None:
    """RunError unless a new run may be written into ``run_dir`` (see the module docstring)."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is a file, not a folder; give --out a new or empty folder")
    if is_dataset_folder(run_dir):
        raise RunError(f"{run_dir} holds a dataset; a run never writes among dataset files: give --out "
                       "a new or empty folder")
    entries = sorted(p.name for p in run_dir.iterdir() if p.name not in PRE_RUN_FILES)
    if not entries or overwrite:
        return
    stored = stored_config(run_dir, resolve)
    if stored is None:
        raise RunError(f"{run_dir} is not empty and holds no mmdenoise run of this task ({short(entries)}); "
                       "give --out a new or empty folder, or pass --overwrite to write the run among these files")
    changed = differences(stored, config, config_cls)
    if changed:
        raise RunError(f"{run_dir} holds another run ({describe_run(stored)}; it differs in "
                       f"{listed(changed)}); pass --resume (resume=True) to continue it, --overwrite "
                       "(overwrite=True) to replace it, or give --out (out=) another folder")


def read_for_resume(run_dir: Path, resolve: Resolve, task: str) -> dict:
    """The resolved config.yaml of the run to resume (the base of the resumed run's settings);
    RunError if ``run_dir`` is not a run folder of ``task`` (general or sequential)."""
    if not run_dir.is_dir():
        raise RunError(f"cannot resume: {run_dir} does not exist")
    if not (run_dir / record.CONFIG_FILE).is_file():
        raise RunError(f"cannot resume: {run_dir} holds no readable {record.CONFIG_FILE}, so it is not a run folder")
    raw = load_yaml(run_dir / record.CONFIG_FILE)
    if raw.get("task", "general") != task:
        raise RunError(f"cannot resume {run_dir}: it holds a {raw.get('task', 'general')} run, not a {task} one")
    try:
        return resolve(raw)
    except MMDenoiseError as exc:
        raise RunError(f"cannot resume: {run_dir / record.CONFIG_FILE} is not a valid run config ({exc})") from None


def check_resume_names(run_dir: Path, raw: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    """RunError if the raw settings of a resume name another task, model or denoiser than the run in
    ``run_dir`` (checked before the settings are resolved, so the message names the model rather
    than the parameters of one model that do not fit another)."""
    names = [k for k in ("task", "model", "denoiser") if k in raw and raw[k] != stored.get(k)]
    if names:
        _refuse_resume(run_dir, stored, [f"{k}: {_shown(stored.get(k))}, not {_shown(raw[k])}" for k in names])


def check_resume(run_dir: Path, config: Mapping[str, Any], stored: Mapping[str, Any],
                 config_cls: type) -> dict[str, Any]:
    """The checkpoint to resume from, after checking that the resolved ``config`` is the run
    ``run_dir`` holds (``stored``, from :func:`read_for_resume`) in every result-deciding setting.

    ``dataset`` is compared by the caller through the checkpoint's fingerprint
    (a name and a path can name the same data). RunError otherwise; nothing
    is written either way.
    """
    changed = differences(stored, config, config_cls, ignore=("dataset",))
    if changed:
        _refuse_resume(run_dir, stored, changed)
    if not (run_dir / record.CHECKPOINT_FILE).is_file():
        raise RunError(f"cannot resume: no {record.CHECKPOINT_FILE} in {run_dir} (the run never finished an "
                       "evaluation); train it again without --resume")
    return record.load_checkpoint(run_dir)


def _refuse_resume(run_dir: Path, stored: Mapping[str, Any], changed: list[str]) -> None:
    raise RunError(f"cannot resume {run_dir}: it holds {describe_run(stored)}, and the settings given differ "
                   f"in {listed(changed)}; drop them to continue that run, or start a new run elsewhere")


def remove_run_files(run_dir: Path) -> None:
    """Remove the files and folders a run writes (``record.RUN_FILES``) and their temporary files."""
    for name in record.RUN_FILES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    for tmp in run_dir.glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink()


@contextlib.contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder ``run_dir`` (flock on the directory itself: no file is
    added, and the lock goes with the process however it ends); a RunError at once when another
    process holds it. Where the platform has no ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no POSIX locks: one writer per folder is then the user's care
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(f"{run_dir} is being written by another process (a study or command training into "
                           "the same folder); wait for it to finish, or give this run another folder") from None
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def writing_run(run_dir: Path, *, fresh: bool) -> Iterator[None]:
    """Create ``run_dir`` and hold it (:func:`exclusive`) while the block writes it (a fresh run first
    removes an earlier run's files), and turn an OSError in the block into a StorageError saying what
    was kept.

    A fresh run without a checkpoint yet is removed (and the folder, if this
    call created it), so a full disk leaves no half run; a checkpoint is kept
    for ``--resume``, as after a kill.
    """
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{describe_os_error(exc)}; nothing of the run was kept") from None
    with exclusive(run_dir):
        with _kept_on_failure(run_dir, fresh=fresh, created=created):
            if fresh and not created:
                remove_run_files(run_dir)
            yield


@contextlib.contextmanager
def _kept_on_failure(run_dir: Path, *, fresh: bool, created: bool) -> Iterator[None]:
    """An OSError in the block as a StorageError; a fresh run without a checkpoint is removed first."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, MMDenoiseError):
            raise
        kept = (run_dir / record.CHECKPOINT_FILE).is_file()
        if fresh and not kept and run_dir.is_dir():
            with contextlib.suppress(OSError):
                remove_run_files(run_dir)
                if created and not any(run_dir.iterdir()):
                    run_dir.rmdir()
        what = ("the last checkpoint is kept: resume with --resume once there is space" if kept
                else "nothing of the run was kept")
        raise StorageError(f"{describe_os_error(exc)}; {what}") from None
