"""The run folder (docs/design.md, Contracts): config.yaml, metrics.jsonl, result.json, per_user.npz, checkpoint.pt.

Every file is written atomically (temporary file + rename); other tools read
these files, so their shapes are a contract.
"""
from __future__ import annotations

import io
import json
import platform
import resource
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import RunError, StorageError, describe_os_error
from ..io import atomic_path, save_npz, write_json, write_text

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
PER_USER_FILE = "per_user.npz"
CHECKPOINT_FILE = "checkpoint.pt"
SCORES_FILE = "interaction_scores.npz"
TENSORBOARD_DIR = "tensorboard"
#: every file and folder a run writes (what a fresh run in an old run's folder removes first)
RUN_FILES = (CONFIG_FILE, METRICS_FILE, RESULT_FILE, PER_USER_FILE, CHECKPOINT_FILE, SCORES_FILE, TENSORBOARD_DIR)
#: what a checkpoint holds (``Trainer._checkpoint_state``); anything else is not a mmdenoise checkpoint
CHECKPOINT_KEYS = frozenset({"epoch", "denoiser", "optimizer", "history", "best", "fingerprint", "seed"})
RESULT_KEYS = frozenset({"test", "dataset", "model", "denoiser", "seed"})


def versions() -> dict[str, str]:
    import scipy

    from .. import __version__
    return {"mmdenoise": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "scipy": scipy.__version__, "platform": sys.platform}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    write_text(run_dir / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in history))


def read_metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl's rows ([] without the file); RunError naming the line if one is not a JSON object."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict):
                raise RunError(f"{path}: line {number} is damaged (not a JSON object)")
            rows.append(row)
    return rows


def write_per_user(run_dir: Path, valid, test) -> None:
    """per_user.npz: ``users`` (evaluated test users), ``test_<metric>`` aligned with
    them, ``valid_users`` and ``valid_<metric>`` likewise."""
    arrays = {"users": test.users, "valid_users": valid.users}
    arrays.update({f"test_{k}": v for k, v in test.per_user.items()})
    arrays.update({f"valid_{k}": v for k, v in valid.per_user.items()})
    save_npz(run_dir / PER_USER_FILE, **arrays)


def add_per_user(run_dir: Path, **arrays: np.ndarray) -> None:
    """Add arrays to a run's per_user.npz (rewritten whole), e.g. ``detection_users`` and
    ``detection_auc``: each user's noise-detection AUC (``eval.detection.per_user_auc``)."""
    save_npz(run_dir / PER_USER_FILE, **{**read_per_user(run_dir), **arrays})


def read_per_user(run_dir: Path) -> dict[str, np.ndarray]:
    return _read_npz(Path(run_dir) / PER_USER_FILE)


def write_scores(run_dir: Path, clean_scores: np.ndarray, noisy: np.ndarray | None) -> None:
    """interaction_scores.npz: ``clean_score`` float [len(train)] (the denoiser's judgement after the
    last epoch, higher = cleaner) and, with planted noise, ``noisy`` bool [len(train)]."""
    arrays = {"clean_score": np.asarray(clean_scores, dtype=np.float32)}
    if noisy is not None:
        arrays["noisy"] = np.asarray(noisy, dtype=bool)
    save_npz(run_dir / SCORES_FILE, **arrays)


def read_scores(run_dir: Path) -> dict[str, np.ndarray]:
    return _read_npz(Path(run_dir) / SCORES_FILE)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a run's .npz file (no pickles); RunError if it is missing or damaged."""
    if not path.is_file():
        if not (path.parent / CONFIG_FILE).is_file():
            raise RunError(f"{path.parent} is not a run folder (no {CONFIG_FILE}); a folder of runs is read by "
                           "`mmdenoise report`")
        raise RunError(f"{path}: missing; the run did not finish (resume it with --resume)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except OSError as exc:
        if exc.errno is not None:
            raise StorageError(describe_os_error(exc)) from None
        raise RunError(f"{path} is damaged (not a readable .npz of numeric arrays)") from None
    except (ValueError, EOFError, KeyError, zipfile.BadZipFile):
        raise RunError(f"{path} is damaged (not a readable .npz of numeric arrays)") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RunError(f"{path} is damaged (not UTF-8 text)") from None
    except OSError as exc:
        raise StorageError(describe_os_error(exc)) from None


def write_result(run_dir: Path, result: dict[str, Any]) -> None:
    write_json(run_dir / RESULT_FILE, result)


def read_result(run_dir: Path) -> dict[str, Any]:
    """result.json; RunError if it is missing, truncated or lacks the keys every result has."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        raise RunError(f"{path}: missing; the run did not finish (resume it with --resume)")
    try:
        result = json.loads(_read_text(path))
    except ValueError as exc:
        raise RunError(f"{path} is damaged ({str(exc)[:80]}); rerun the run (--resume) or delete it") from None
    if not isinstance(result, dict) or not RESULT_KEYS <= set(result) or not isinstance(result["dataset"], dict):
        raise RunError(f"{path} is damaged (not a mmdenoise result: lacks {sorted(RESULT_KEYS)})")
    return result


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """checkpoint.pt, atomically. Serialised in memory first and written as bytes: torch's own file
    writer turns a full disk into an opaque RuntimeError, a plain write into an OSError naming it."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(run_dir / CHECKPOINT_FILE) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """checkpoint.pt, loaded with ``weights_only=True`` (tensors and plain containers, never code).

    Any failure to load it (truncated, corrupt, another program's file, a
    pickle that asks for code) is one RunError that says so and no more:
    torch's own message would suggest loading it unsafely.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.is_file():
        raise RunError(f"{path}: missing; the run never finished an evaluation, so there is no model to load")
    damaged = RunError(f"{path} is damaged or not a mmdenoise checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        if exc.errno is not None:
            raise StorageError(describe_os_error(exc)) from None
        raise damaged from None
    except Exception:  # noqa: BLE001 - unpickling fails in many ways; each means the same to the user
        raise damaged from None
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= set(state) or not isinstance(state["best"], dict):
        raise damaged
    return state


def check_fingerprint(run_dir: Path, state: dict[str, Any], dataset, doing: str) -> None:
    """RunError unless the checkpoint ``state`` was trained on ``dataset``; the message says on what
    it was trained, naming a noised copy's planted noise (a run trained on ``inject_noise``'s output
    records the source's name, so the name alone misleads)."""
    if state["fingerprint"] == dataset.fingerprint:
        return
    trained_on = state.get("dataset") or {}
    noise = trained_on.get("noise")
    if noise:
        what = (f"a noised copy of {trained_on.get('name', 'its dataset')} ({noise_label(noise)}; fingerprint "
                f"{state['fingerprint']}), not on {dataset.name} itself")
        hint = "; pass that copy (evaluate_run(..., dataset=inject_noise(...)) or its folder from data noise)"
    else:
        what = f"dataset fingerprint {state['fingerprint']}, but {dataset.name} now has {dataset.fingerprint}"
        hint = ""
    raise RunError(f"cannot {doing} {run_dir}: it was trained on {what}{hint}")


def noise_label(spec: dict[str, Any]) -> str:
    """A planted-noise spec in a few words: ``noise add 0.1, seed 0``."""
    parts = [f"{k} {spec[k]:g}" for k in ("add", "remove") if isinstance(spec.get(k), (int, float)) and spec[k]]
    for kind in ("swap", "misalign"):
        parts += [f"{kind} {m} {r:g}" for m, r in sorted((spec.get(kind) or {}).items())]
    return "noise " + (", ".join(parts) or "none") + f", seed {spec.get('seed', '?')}"


def dataset_summary(dataset) -> dict[str, Any]:
    """What a run records of its data (result.json and checkpoint): name, content fingerprint and, for
    a noised copy, the planted-noise spec (its name is the clean source's)."""
    summary = {"name": dataset.name, "fingerprint": dataset.fingerprint}
    if dataset.noise is not None:
        spec = dataset.noise.spec
        summary["noise"] = {k: spec[k] for k in ("add", "remove", "swap", "misalign", "seed") if k in spec}
        source = spec.get("source")
        if isinstance(source, dict) and "fingerprint" in source:
            summary["noise"]["source"] = source["fingerprint"]
    return summary


def load_best_state(run_dir: Path, dataset) -> dict[str, Any]:
    """The model state of a run's best validation epoch (the last state if it never evaluated),
    after checking that the checkpoint was trained on ``dataset`` (same fingerprint)."""
    state = load_checkpoint(run_dir)
    check_fingerprint(run_dir, state, dataset, "evaluate")
    return state["best"]["state"] if state["best"].get("state") is not None else state["denoiser"]
