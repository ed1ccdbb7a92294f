"""The run folder of DESIGN §7: config.yaml, metrics.jsonl, result.json, per_user.npz, checkpoint.pt.

Every file is written atomically (temporary file + rename); other tools read
these files, so their shapes are a contract.
"""
from __future__ import annotations

import json
import platform
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..io import atomic_path, save_npz, write_json, write_text

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
PER_USER_FILE = "per_user.npz"
CHECKPOINT_FILE = "checkpoint.pt"
SCORES_FILE = "interaction_scores.npz"


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
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_per_user(run_dir: Path, valid, test) -> None:
    """per_user.npz: ``users`` (evaluated test users), ``test_<metric>`` aligned with
    them, ``valid_users`` and ``valid_<metric>`` likewise."""
    arrays = {"users": test.users, "valid_users": valid.users}
    arrays.update({f"test_{k}": v for k, v in test.per_user.items()})
    arrays.update({f"valid_{k}": v for k, v in valid.per_user.items()})
    save_npz(run_dir / PER_USER_FILE, **arrays)


def read_per_user(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(run_dir) / PER_USER_FILE, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_scores(run_dir: Path, clean_scores: np.ndarray, noisy: np.ndarray | None) -> None:
    """interaction_scores.npz: ``clean_score`` float [len(train)] (the denoiser's judgement after the
    last epoch, higher = cleaner) and, with planted noise, ``noisy`` bool [len(train)]."""
    arrays = {"clean_score": np.asarray(clean_scores, dtype=np.float32)}
    if noisy is not None:
        arrays["noisy"] = np.asarray(noisy, dtype=bool)
    save_npz(run_dir / SCORES_FILE, **arrays)


def read_scores(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(Path(run_dir) / SCORES_FILE, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_result(run_dir: Path, result: dict[str, Any]) -> None:
    write_json(run_dir / RESULT_FILE, result)


def read_result(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / RESULT_FILE).read_text(encoding="utf-8"))


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    with atomic_path(run_dir / CHECKPOINT_FILE) as tmp:
        torch.save(state, tmp)


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    return torch.load(Path(run_dir) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


def load_best_state(run_dir: Path, dataset) -> dict[str, Any]:
    """The model state of a run's best validation epoch (the last state if it never evaluated),
    after checking that the checkpoint was trained on ``dataset`` (same fingerprint)."""
    state = load_checkpoint(run_dir)
    if state["fingerprint"] != dataset.fingerprint:
        raise ConfigError(f"{run_dir} was trained on dataset {state['fingerprint']}, "
                          f"but {dataset.name} now has fingerprint {dataset.fingerprint}")
    return state["best"]["state"] if state["best"]["state"] is not None else state["denoiser"]
