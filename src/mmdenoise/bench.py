"""``mmdenoise bench``: seconds per epoch, seconds per full evaluation, peak memory; with
``--scale``, the same across datasets of growing size and the log–log slope of cost vs interactions."""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .api import build, resolve_config
from .data import load_dataset
from .data.registry import resolve
from .errors import ConfigError, MMDenoiseError
from .experiments import tables
from .experiments.plots import scaling_plot
from .io import write_json, write_text
from .log import get_logger
from .models import MODELS
from .registry import lookup
from .training import record
from .training.general import GeneralTask
from .training.trainer import Trainer


def bench(dataset: str, model: str, denoiser: str = "none", *, epochs: int = 5, evals: int = 3,
          overrides: Sequence[str] = (), seed: int = 0) -> dict:
    """Time ``epochs`` training epochs and ``evals`` full validation evaluations.

    The first epoch and the first evaluation are reported separately as
    warm-up; the steady-state figures are medians of the rest. Returns a dict
    of the measurements (seconds, MiB). ``build_seconds`` and
    ``build_peak_rss_mb`` cover building the model, item graphs included
    when they are not in the graph cache yet (a cold cache measures the build).
    """
    config = resolve_config({"dataset": dataset, "model": model, "denoiser": denoiser, "seed": seed},
                            overrides)
    t0 = time.perf_counter()
    data = load_dataset(config.dataset)
    load_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    backbone, den = build(data, config)
    build_seconds = time.perf_counter() - t0
    build_peak_rss_mb = record.peak_rss_mb()  # load + model build (item graphs when not cached)
    trainer = Trainer(GeneralTask(data, den), dataclasses.replace(config.train, progress=False), seed=seed)
    trainer.prepare()
    optimizer = trainer.make_optimizer()
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)

    def timed(fn):
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        start = time.perf_counter()
        fn()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
        return time.perf_counter() - start

    epoch_times = [timed(lambda e=e: trainer.train_epoch(e, optimizer)) for e in range(epochs)] \
        if optimizer is not None else []
    eval_times = [timed(lambda: trainer.evaluate(trainer.valid_evaluator)) for _ in range(evals)]
    steady = lambda xs: float(np.median(xs[1:] if len(xs) > 1 else xs)) if xs else 0.0  # noqa: E731
    out = {
        "dataset": data.name, "model": config.model, "denoiser": config.denoiser,
        "device": str(trainer.device), "threads": torch.get_num_threads(),
        "users": data.n_users, "items": data.n_items, "train_interactions": len(data.train),
        "load_seconds": load_seconds, "build_seconds": build_seconds, "build_peak_rss_mb": build_peak_rss_mb,
        "first_epoch_seconds": epoch_times[0] if epoch_times else 0.0,
        "seconds_per_epoch": steady(epoch_times),
        "first_eval_seconds": eval_times[0], "eval_seconds": steady(eval_times),
        "peak_rss_mb": record.peak_rss_mb(),
    }
    if trainer.device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
    return out


# ------------------------------------------------------------------- scaling
#: ``bench --scale``'s default datasets, smallest to largest (the synthetic presets of the papers' sizes)
SCALE_PRESETS = ("synth-tiny", "synth-baby", "synth-sports", "synth-clothing", "synth-microlens")
#: the costs whose growth with the training interactions is fitted: bench() key -> label in tables and plots
SCALE_COSTS = {"seconds_per_epoch": "s/epoch", "eval_seconds": "s/eval"}
SCALE_COLUMNS = ("dataset", "users", "items", "train interactions", "s/epoch", "first epoch s", "s/eval",
                 "build s", "peak RSS MB", "threads", "device")


@dataclass(frozen=True)
class ScaleResult:
    """What :func:`bench_scale` measured and wrote.

    report: the content of ``scale.json`` (rows, slopes, machine, settings); markdown: the content
    of ``scale.md``; files: the paths written (``scale.json``, ``scale.md``, ``scale.png``).
    """

    report: dict
    markdown: str
    files: tuple[Path, ...]


def log_log_slope(sizes: Sequence[float], costs: Sequence[float]) -> tuple[float, float]:
    """Least-squares line through (log size, log cost): ``cost ≈ exp(intercept) · size ** slope``.

    sizes, costs: [n] positive numbers (e.g. training interactions and seconds), n ≥ 2 with at
    least two distinct sizes. Returns (slope, intercept), natural logarithms; a slope of 1 means
    cost proportional to size. ValueError when the points cannot define a line.
    """
    x, y = np.asarray(sizes, dtype=np.float64), np.asarray(costs, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"sizes and costs must be two sequences of one length, got shapes {x.shape} and {y.shape}")
    if np.unique(x).size < 2:
        raise ValueError(f"a log-log slope needs at least two distinct sizes, got {x.tolist()}")
    if not (np.all(x > 0) and np.all(y > 0) and np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError(f"a log-log slope needs positive, finite sizes and costs, got {x.tolist()} and "
                         f"{y.tolist()}")
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(intercept)


def _bench_subprocess(dataset: str, model: str, denoiser: str, epochs: int, overrides: Sequence[str]) -> dict:
    """bench() in a fresh interpreter (its peak RSS is this dataset's alone); a MMDenoiseError naming
    ``dataset`` and the child's last stderr line when it fails."""
    command = [sys.executable, "-m", "mmdenoise.cli", "-q", "bench", "-d", dataset, "-m", model,
               "--denoiser", denoiser, "--epochs", str(epochs), "--json"]
    for override in overrides:
        command += ["--set", override]
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode == 0:
        try:
            return json.loads(child.stdout)
        except json.JSONDecodeError:
            reason = f"its output is not JSON: {child.stdout.strip()[-200:]!r}"
    else:
        lines = [line for line in child.stderr.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit status {child.returncode}, nothing on stderr"
    raise MMDenoiseError(f"bench --scale: the benchmark on {dataset} failed ({reason}); nothing was written")


def machine_description(rows: Sequence[dict]) -> dict:
    """Where the timings were taken: CPU model (/proc/cpuinfo when present), cores, torch and Python
    versions, the threads and devices the benchmarks used (from ``rows``) and the date (UTC)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text(errors="replace").splitlines()
                 if line.startswith("model name") and ":" in line]
        cpu = names[0] if names else cpu
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    described = {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
                 "threads": sorted({r["threads"] for r in rows}), "devices": sorted({r["device"] for r in rows}),
                 "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
                 "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    if any(d.startswith("cuda") for d in described["devices"]):
        described["gpu"] = torch.cuda.get_device_name(0)
    return described


def _seconds(value: float) -> str:
    """Three significant digits (0.0293, 2.40, 12.3), whole seconds from 100 s."""
    return f"{value:.0f}" if value >= 100 else f"{value:#.3g}"


def _scale_markdown(report: dict) -> str:
    """scale.md: title, the table (experiments.tables), the fitted slopes, the machine and the command."""
    rows = [[r["dataset"], f"{r['users']:,}", f"{r['items']:,}", f"{r['train_interactions']:,}",
             _seconds(r["seconds_per_epoch"]), _seconds(r["first_epoch_seconds"]), _seconds(r["eval_seconds"]),
             _seconds(r["build_seconds"]), f"{r['peak_rss_mb']:.0f}", str(r["threads"]), r["device"]]
            for r in report["rows"]]
    first, last = report["rows"][0]["dataset"], report["rows"][-1]["dataset"]
    span = f"{first} → {last}, {len(rows)} datasets"
    fits = "; ".join(f"{SCALE_COSTS[key]} ∝ interactions^{fit['slope']:.2f}" for key, fit in report["slopes"].items())
    m = report["machine"]
    machine = (f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
               f"{'/'.join(map(str, m['threads']))} torch thread(s), {'/'.join(m['devices'])}"
               + (f" ({m['gpu']})" if "gpu" in m else "") + f"; torch {m['torch']}, Python {m['python']}; "
               f"{m['date']}")
    settings = (f"{report['epochs']} epochs timed per dataset, s/epoch the median after the first (warm-up); "
                "s/eval a full validation evaluation (median after the first); each dataset in a fresh process")
    return "\n".join([
        f"# Cost vs size: {report['model']} + {report['denoiser']}", "",
        tables.markdown(SCALE_COLUMNS, rows, "lrrrrrrrrrl"), "",
        f"Log–log least-squares slopes vs training interactions ({span}): {fits}.", "",
        f"Machine: {machine}.", "",
        f"{settings}.", "",
        f"Command: `{report['command']}`", ""])


def bench_scale(model: str, denoiser: str = "none", *, presets: Sequence[str] = SCALE_PRESETS, epochs: int = 5,
                overrides: Sequence[str] = (), out: str | Path) -> ScaleResult:
    """Time ``model`` (+ ``denoiser``) on each of ``presets`` and fit how the cost grows with the data.

    Each dataset (registered name or folder) is benchmarked by :func:`bench` in its own fresh
    interpreter (``mmdenoise -q bench ... --json``), one after the other, so that each peak RSS
    is that dataset's alone and no run warms another's caches. Rows are sorted by training
    interactions; the slopes of log(s/epoch) and log(s/eval) against log(training interactions)
    are least-squares fits (:func:`log_log_slope`; 1.0 = linear).

    Writes into ``out``, only once every dataset has been measured: ``scale.json`` (settings,
    rows as bench() returns them — seconds, MiB —, slopes and intercepts, the machine),
    ``scale.md`` (the table, the slopes and the machine) and ``scale.png`` (log–log cost vs
    interactions with the fitted lines). Every dataset is resolved first: an unknown name or a
    missing folder is an error before any benchmark, and a registered dataset not built yet is
    built in this process (not in the timed child). A dataset whose benchmark fails raises a
    MMDenoiseError naming it and the child's last stderr line, and nothing is written.
    """
    presets = [p.strip() for p in (presets.split(",") if isinstance(presets, str) else presets) if p.strip()]
    if len(presets) < 2:
        raise ConfigError(f"bench --scale needs at least two datasets to fit a slope, got {presets}")
    if len(set(presets)) != len(presets):
        raise ConfigError(f"bench --scale: a dataset is listed twice in {presets}")
    if epochs < 1:
        raise ConfigError(f"bench --scale needs at least one epoch, got {epochs}")
    config = resolve_config({"dataset": presets[0], "model": model, "denoiser": denoiser}, overrides)
    if not lookup(MODELS, config.model, "model").trained:
        raise ConfigError(f"bench --scale times training epochs; model {config.model!r} is not trained")
    for dataset in presets:  # a typo fails now, not after the smaller datasets' benchmarks; and a registered
        resolve(dataset)     # dataset is built here, so that no child's peak RSS includes generating it
    log = get_logger(__name__)
    rows = []
    for k, dataset in enumerate(presets):
        log.info("bench --scale: %s + %s on %s (%d/%d), %d epochs, in a fresh process", model, denoiser, dataset,
                 k + 1, len(presets), epochs)
        row = _bench_subprocess(dataset, model, denoiser, epochs, overrides)
        log.info("bench --scale: %s: %s training interactions, %.3f s/epoch, %.3f s/eval, %.0f MiB peak RSS",
                 row["dataset"], f"{row['train_interactions']:,}", row["seconds_per_epoch"], row["eval_seconds"],
                 row["peak_rss_mb"])
        rows.append(row)
    rows.sort(key=lambda r: r["train_interactions"])
    sizes = [r["train_interactions"] for r in rows]
    slopes = {}
    for key in SCALE_COSTS:
        try:
            slope, intercept = log_log_slope(sizes, [r[key] for r in rows])
        except ValueError as exc:
            raise MMDenoiseError(f"bench --scale: cannot fit {SCALE_COSTS[key]} vs training interactions: {exc}; "
                                 "nothing was written") from None
        slopes[key] = {"slope": slope, "intercept": intercept}
    command = shlex.join(["mmdenoise", "bench", "--scale", "-m", model]
                         + (["--denoiser", denoiser] if denoiser != "none" else [])
                         + ["--presets", ",".join(presets), "--epochs", str(epochs)]
                         + [arg for o in overrides for arg in ("--set", o)] + ["--out", str(out)])
    report = {"model": config.model, "denoiser": config.denoiser, "epochs": epochs, "overrides": list(overrides),
              "presets": presets, "command": command, "machine": machine_description(rows),
              "fit": "log(cost) = slope * log(train_interactions) + intercept, natural logs, least squares",
              "slopes": slopes, "rows": rows}
    markdown = _scale_markdown(report)
    out = Path(out)
    files = (out / "scale.json", out / "scale.md", out / "scale.png")
    # the figure first: it is the step most likely to fail (matplotlib), and then nothing is written
    scaling_plot(files[2], f"{config.model} + {config.denoiser}: cost vs training interactions", sizes,
                 {SCALE_COSTS[key]: ([r[key] for r in rows], fit["slope"], fit["intercept"])
                  for key, fit in slopes.items()},
                 labels=[r["dataset"] for r in rows])
    write_json(files[0], report)
    write_text(files[1], markdown)
    return ScaleResult(report, markdown, files)
