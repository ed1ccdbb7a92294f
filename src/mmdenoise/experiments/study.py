"""Noise-robustness studies and ablations (GUIDER Fig. 8 / Table 3, DA-MRS Fig. 3–4 / Tables 3–4).

Both are grids of runs: each cell (backbone × denoiser or variant × noise
level × seed) is a trial run by :func:`experiments.runner.run_trials`, so a
study resumes after an interruption exactly as a sweep does (finished cells
are skipped) and runs on the local or the Ray backend.

Noise study: for each seed s and level r > 0, the clean dataset is noised once
with seed s (``data.noise.write_noised``; cached under ``<out>/data/seed<s>/``
and reused when its noise.json matches), so different seeds give different
noise draws; level 0 is the clean dataset. The seed is also the run's
training seed. Outputs: ``study.md`` (test Recall@20 and NDCG@20, mean ± std
over seeds, per backbone × denoiser × level, and the decline rate
(R@20(0) − R@20(max)) / R@20(0)), ``study.json`` and one PNG curve per backbone.

Ablation: every variant a denoiser's registry entry declares (its
``ablations``: label -> overrides, e.g. GUIDER's registered ``guider-*`` names
or DA-MRS's switch settings) plus ``none``, one table (``ablation.md``,
``ablation.json``).

Baselines: backbones at their defaults on one clean dataset, one table of
validation and test accuracy at the best validation epoch with the cost
(``baselines.md``, ``baselines.json``).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError, DataError
from ..log import get_logger
from .tables import Cell, markdown
from ..config import Override, override_pairs
from .runner import Objective, make_trial, run_trials, summary_record, trial_defaults, validate_trial

log = get_logger(__name__)

TABLE_METRICS = (("recall@20", "R@20"), ("ndcg@20", "N@20"))
NOISE_KINDS = ("add", "remove", "swap", "misalign")
DEFAULT_LEVELS = (0.0, 0.05, 0.1, 0.15, 0.2)

@dataclass
class StudyResult:
    """A finished study: its folder, every cell's record (params, valid/test metrics) and the report files."""

    root: Path
    records: list[dict]
    table: str
    files: list[Path]


# --------------------------------------------------------------- helpers
def parse_kind(kind: str) -> tuple[str, str | None]:
    """``add`` / ``remove`` / ``swap:MOD`` / ``misalign:MOD`` → (kind, modality or None)."""
    name, _, modality = kind.partition(":")
    if name not in NOISE_KINDS:
        raise ConfigError(f"--kind {kind!r}: unknown noise kind; valid: add, remove, swap:MODALITY, "
                          "misalign:MODALITY")
    if name in ("swap", "misalign") and not modality:
        raise ConfigError(f"--kind {kind!r}: {name} needs a modality, e.g. {name}:image")
    if name in ("add", "remove") and modality:
        raise ConfigError(f"--kind {kind!r}: {name} takes no modality")
    return name, modality or None


def _noise_options(kind: str, modality: str | None, level: float) -> dict:
    if kind in ("add", "remove"):
        return {kind: level}
    return {kind: {modality: level}}


def noised_dataset(source, kind: str, modality: str | None, level: float, seed: int, root: Path) -> str:
    """The dataset argument of a study cell: the clean source at level 0, else a cached noised folder.

    The folder ``root/data/seed<seed>/<source>-<kind>[-<modality>]-<level>`` is
    written once by ``write_noised`` (same name for every seed, so reports
    group seeds); an existing folder is reused when its noise.json records the
    same source fingerprint, kind, level and seed, and is an error otherwise.
    """
    if level == 0:
        return str(source.path.resolve()) if source.path is not None else source.name
    label = f"{source.name}-{kind}{'-' + modality if modality else ''}-{level:g}"
    return noised_copy(source, kind, modality, level, seed, root / "data" / f"seed{seed}" / label)


def noised_copy(source, kind: str, modality: str | None, level: float, seed: int, folder: Path) -> str:
    """``folder`` (absolute) holding ``source`` with one kind of planted noise at ``level`` under ``seed``:
    written once by ``write_noised``; an existing folder is reused when its noise.json records the same
    source fingerprint, kind, level and seed, and is a DataError otherwise."""
    from ..data import read_mmrec
    from ..data.noise import write_noised
    folder = Path(folder).resolve()
    options = _noise_options(kind, modality, level)
    if folder.exists():
        spec = (read_mmrec(folder).noise.spec if (folder / "noise.json").exists() else {})
        wanted = {"add": 0.0, "remove": 0.0, "swap": {}, "misalign": {}, **options, "seed": seed}
        same = (spec.get("source", {}).get("fingerprint") == source.fingerprint
                and all(spec.get(k) == v for k, v in wanted.items()))
        if not same:
            raise DataError(f"{folder} holds other data (not {kind} {level:g} with seed {seed} from "
                            f"{source.name}); remove it or use another output folder")
        return str(folder)
    return str(write_noised(source, folder, seed=seed, **options))


def _stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single seed)."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def _test_values(records: Sequence[dict], metric: str) -> list[float]:
    """The test ``metric`` of each trial record (one per seed)."""
    return [r["test"][metric] for r in records]


def _cell(mean: float, std: float, n: int, bold: bool = False, marked: bool = False) -> Cell:
    """``mean ± std`` over n seeds (the mean alone for one seed)."""
    return Cell(f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}", bold, marked)


def decline_rate(clean: float, noisiest: float) -> float:
    """(R(0) − R(max)) / R(0): the share of the clean score lost at the highest noise level."""
    return (clean - noisiest) / clean if clean != 0 else float("nan")


def _split_list(text: str | Sequence[str], option: str) -> list[str]:
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else [str(s).strip() for s in text]
    items = [s for s in items if s]
    if not items:
        raise ConfigError(f"{option}: give at least one value")
    repeated = [s for s in dict.fromkeys(items) if items.count(s) > 1]
    if repeated:
        raise ConfigError(f"{option}: {repeated[0]!r} is given more than once in {', '.join(items)}")
    return items


def _parse_levels(levels: str | Sequence[float]) -> list[float]:
    raw = _split_list(levels, "--levels") if isinstance(levels, str) else list(levels)
    out = []
    for value in raw:
        try:
            level = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"--levels: {value!r} is not a number") from None
        if not 0.0 <= level <= 1.0:
            raise ConfigError(f"--levels: {level} is not a ratio in [0, 1]")
        out.append(level)
    if len(set(out)) != len(out):
        raise ConfigError(f"--levels: a level is given more than once in {', '.join(f'{v:g}' for v in out)}")
    return sorted(out)


def parse_seeds(seeds: int | str | Sequence[int], option: str = "--seeds") -> list[int]:
    """The one meaning of ``--seeds`` in every command: a list of seeds, or a count.

    ``"0,4,7"`` (or a Python sequence) is that list; a bare integer N (``"3"``
    or ``3``) is the count shorthand for 0..N-1; ``"4,"`` is the single seed 4.
    Seeds are distinct, non-negative integers.
    """
    if isinstance(seeds, bool):
        raise ConfigError(f"{option}: expected a count or a list of seeds, got {seeds!r}")
    if isinstance(seeds, (int, np.integer)) or (isinstance(seeds, str) and "," not in seeds):
        try:
            count = int(seeds)
        except ValueError:
            raise ConfigError(f"{option}: expected a count (3) or a comma-separated list (0,1,2), "
                              f"got {seeds!r}") from None
        if count < 1:
            raise ConfigError(f"{option}: a count must be >= 1, got {count} (the seed 0 alone is '0,')")
        return list(range(count))
    parts = [p.strip() for p in seeds.split(",")] if isinstance(seeds, str) else list(seeds)
    try:
        values = [int(p) for p in parts if not (isinstance(p, str) and not p)]
    except (TypeError, ValueError):
        raise ConfigError(f"{option}: seeds are integers, got {seeds!r}") from None
    if not values or min(values) < 0 or len(set(values)) != len(values):
        raise ConfigError(f"{option}: give distinct non-negative seeds, got {seeds!r}")
    return values


def check_task(models: Sequence[str], task: str, study: str) -> None:
    """A ConfigError naming the studies of the other task when a model belongs to it (or is unknown)."""
    from ..api import model_task
    for model in models:
        if model_task(model) != task:
            other = ("study sensitivity, study splits" if task == "general" else "study noise, study ablation")
            raise ConfigError(f"{model} is a {model_task(model)} model; the {study} runs {task} models "
                              f"(for {model_task(model)} models: {other})")


def scoped_overrides(overrides: Sequence[Override], names: Sequence[str]) -> dict[str | None, list[Override]]:
    """Split (key, value) overrides into those for every cell (scope None) and those whose key is
    ``NAME:key``.

    A scoped override applies only to the cells whose backbone or denoiser is
    NAME (e.g. ``tce:denoiser_params.num_gradual=1000``); NAME must be one of
    ``names``, so a misspelt scope is an error rather than a silent no-op.
    """
    scoped: dict[str | None, list[Override]] = defaultdict(list)
    for key, value in overrides:
        scope, sep, rest = key.partition(":")
        if not sep:
            scoped[None].append((key, value))
            continue
        if scope not in names:
            raise ConfigError(f"--set {key}={value!r}: scope {scope!r} is none of this study's backbones or "
                              f"denoisers ({', '.join(names)})")
        scoped[scope].append((rest, value))
    return scoped


def validate_cells(trials: list[dict]) -> list[dict]:
    """``trials``, each first resolved without training (a ConfigError names its cell)."""
    for trial in trials:
        validate_trial(trial, f"cell {trial['params']}")
    return trials


# ------------------------------------------------------------ noise study
def noise_study(dataset: str, models: str | Sequence[str], denoisers: str | Sequence[str] = "none", *,
                kind: str = "add", levels: str | Sequence[float] = DEFAULT_LEVELS,
                seeds: int | str | Sequence[int] = 3,
                out: str | Path | None = None, overrides: Sequence[str | Override] = (), backend: str = "local",
                workers: int = 1, address: str | None = None,
                on_result: Callable[[dict], None] | None = None) -> StudyResult:
    """Train every backbone × denoiser × noise level × seed and write the table and curves.

    dataset: a registered name or a folder (clean). models, denoisers: names
    (lists or comma-separated). kind: add | remove | swap:MOD | misalign:MOD.
    levels: noise ratios (0 = clean). seeds: a count N (0..N-1) or a list
    (``parse_seeds``), each the noise draw and the training seed. overrides: (key, value) pairs or
    ``key=value`` text for every run (e.g. ``train.epochs=50``), or ``NAME:key`` for the runs of one
    backbone or denoiser NAME (e.g. ``tce:denoiser_params.num_gradual=1000``).
    out: default ``studies/<dataset>-noise-<kind>``.
    """
    from ..data import load_dataset
    from .plots import noise_curves
    models, denoisers = _split_list(models, "models"), _split_list(denoisers, "denoisers")
    overrides = override_pairs(overrides)
    check_task(models, "general", "noise study")
    kind_name, modality = parse_kind(kind)
    levels, seed_list = _parse_levels(levels), parse_seeds(seeds)
    source = load_dataset(dataset)
    if source.noise is not None:
        raise ConfigError(f"{dataset}: a noise study starts from clean data, but it carries planted noise")
    if modality is not None and modality not in source.features:
        raise ConfigError(f"--kind {kind}: {source.name} has no modality {modality!r}; modalities: "
                          f"{', '.join(source.features) or 'none'}")
    root = Path(out if out is not None else Path("studies") / f"{source.name}-noise-{kind.replace(':', '-')}")
    scoped = scoped_overrides(overrides, models + denoisers)
    objective = Objective()

    def trials_on(dataset_of: Callable[[float, int], str]) -> list[dict]:
        trials = []
        for model in models:
            for denoiser in denoisers:
                for level in levels:
                    for seed in seed_list:
                        params = {"model": model, "denoiser": denoiser, "noise": kind, "level": level, "seed": seed}
                        fixed = trial_defaults(objective) + [("model", model), ("denoiser", denoiser), ("seed", seed)]
                        extra = scoped[None] + scoped[model] + scoped[denoiser]
                        trials.append(make_trial(params, {"dataset": dataset_of(level, seed)}, fixed + extra))
        return trials

    # every cell's config resolved on the clean source (level 0 writes nothing) before any noisy copy is written
    clean = noised_dataset(source, kind_name, modality, 0, 0, root)
    validate_cells(trials_on(lambda level, seed: clean))
    root.mkdir(parents=True, exist_ok=True)
    log.info("noise study in %s: %d backbone(s) × %d denoiser(s) × %d level(s) × %d seed(s) = %d runs",
             root, len(models), len(denoisers), len(levels), len(seed_list),
             len(models) * len(denoisers) * len(levels) * len(seed_list))
    datasets = {(level, seed): noised_dataset(source, kind_name, modality, level, seed, root)
                for level in levels for seed in seed_list}
    records = run_trials(root, trials_on(lambda level, seed: datasets[(level, seed)]), objective, backend=backend,
                         workers=workers, address=address, on_result=on_result)
    raise_if_failed(records)

    cells = defaultdict(list)
    for rec in records:
        p = rec["params"]
        cells[(p["model"], p["denoiser"], p["level"])].append(rec)
    table = noise_table(source.name, kind, models, denoisers, levels, cells, len(seed_list))
    files = []
    for model in models:
        series = {d: [_stats(_test_values(cells[(model, d, lv)], "recall@20")) for lv in levels]
                  for d in denoisers}
        files.append(noise_curves(root / f"noise_{model}.png", model, source.name, kind, levels, series,
                                  len(seed_list)))
    summary = {"dataset": source.name, "kind": kind, "levels": levels, "seeds": seed_list, "models": models,
               "denoisers": denoisers, "overrides": list(overrides),
               "cells": [{"model": m, "denoiser": d, "level": lv,
                          **{metric: dict(zip(("mean", "std"), _stats(_test_values(cells[(m, d, lv)], metric))),
                                          values=_test_values(cells[(m, d, lv)], metric))
                             for metric, _ in TABLE_METRICS}}
                         for m in models for d in denoisers for lv in levels],
               "decline_rate": {m: {d: decline_rate(np.mean(_test_values(cells[(m, d, levels[0])], "recall@20")),
                                                    np.mean(_test_values(cells[(m, d, levels[-1])], "recall@20")))
                                    for d in denoisers} for m in models},
               "runs": [summary_record(r, ("name", "params", "path")) for r in records]}
    files += _write(root, "study", table, summary, [f.name for f in files])
    return StudyResult(root.resolve(), records, table, files)


def noise_table(dataset: str, kind: str, models: Sequence[str], denoisers: Sequence[str],
                levels: Sequence[float], cells: dict, n_seeds: int, alpha: float = 0.05) -> str:
    """Markdown: per backbone and metric, a row per denoiser, a column per level (mean ± std), the decline rate.

    cells: (model, denoiser, level) -> the cell's trial records (one per seed:
    ``test`` metrics and run ``path``). The best mean of each level column (as
    printed, 4 decimals) is bold; ``*`` where a paired t-test over test users
    (per-user values averaged over seeds) against ``none`` at the same level
    gives p < alpha and the mean is higher.
    """
    from ..eval.pairing import significantly_better
    out = []
    lo, hi = levels[0], levels[-1]
    for model in models:
        for metric, short in TABLE_METRICS:
            stats = {(d, lv): _stats(_test_values(cells[(model, d, lv)], metric))
                     for d in denoisers for lv in levels}
            paths = {(d, lv): [Path(r["path"]) for r in cells[(model, d, lv)]] for d in denoisers for lv in levels}
            marked = {(d, lv) for d in denoisers for lv in levels if d != "none" and "none" in denoisers
                      and significantly_better(paths[(d, lv)], paths[("none", lv)], metric, alpha)}
            best = {lv: max(round(stats[(d, lv)][0], 4) for d in denoisers) for lv in levels}
            # the decline needs two levels; the stars need none's runs
            decline = [f"decline {100 * lo:g}%→{100 * hi:g}%"] if len(levels) > 1 else []
            header = ["denoiser", *(f"{100 * lv:g}%" for lv in levels), *decline]
            rows = [[d, *(_cell(*stats[(d, lv)], n_seeds, bold=round(stats[(d, lv)][0], 4) == best[lv],
                                marked=(d, lv) in marked) for lv in levels),
                     *([f"{100 * decline_rate(stats[(d, lo)][0], stats[(d, hi)][0]):.1f}%"] if decline else [])]
                    for d in denoisers]
            stars = f"; * p < {alpha} paired t-test vs none" if "none" in denoisers else ""
            title = (f"**{model}** on {dataset}: test {short} under {kind} noise (mean ± std over {n_seeds} "
                     f"seed{'s' if n_seeds > 1 else ''}{stars})")
            out.append(title + "\n\n" + markdown(header, rows, "l" + "r" * (len(header) - 1)))
    return "\n\n".join(out) + "\n"


# --------------------------------------------------------------- ablation
def ablation_variants(denoiser: str) -> dict[str, list[Override]]:
    """Variant label → overrides: ``none``, then the variants ``denoiser``'s registry entry declares."""
    from ..denoise import DENOISERS
    from ..registry import lookup
    entry = lookup(DENOISERS, denoiser, "denoiser")  # an unknown name: the valid ones, the closest first
    if not entry.ablations:
        with_variants = sorted(name for name, e in DENOISERS.items() if e.ablations)
        raise ConfigError(f"no ablation variants of denoiser {denoiser!r}; ablations exist for "
                          f"{', '.join(with_variants)}")
    return {"none": [("denoiser", "none")], **{label: list(pairs) for label, pairs in entry.ablations.items()}}


def ablation_study(dataset: str, model: str, denoiser: str, *, seeds: int | str | Sequence[int] = 1,
                   out: str | Path | None = None,
                   overrides: Sequence[str | Override] = (), backend: str = "local", workers: int = 1,
                   address: str | None = None, on_result: Callable[[dict], None] | None = None) -> StudyResult:
    """Train ``none`` and every variant of ``denoiser`` on ``model`` for each seed; write one table.

    out: default ``studies/<dataset>-ablation-<model>-<denoiser>``.
    """
    from ..data.registry import resolve
    seed_list, overrides = parse_seeds(seeds), override_pairs(overrides)
    check_task([model], "general", "ablation study")
    variants = ablation_variants(denoiser)
    path = Path(dataset).expanduser()
    data_arg = str(path.resolve()) if path.is_dir() else dataset
    resolve(data_arg)  # a clear error for a missing dataset before anything trains
    name = path.name
    root = Path(out if out is not None else Path("studies") / f"{name}-ablation-{model}-{denoiser}")
    objective = Objective()
    trials = [make_trial({"model": model, "variant": label, "seed": seed}, {"dataset": data_arg},
                         trial_defaults(objective) + [("model", model), ("seed", seed)] + extra + overrides)
              for label, extra in variants.items() for seed in seed_list]
    records = run_trials(root, validate_cells(trials), objective, backend=backend, workers=workers,
                         address=address, on_result=on_result)
    raise_if_failed(records)
    table = ablation_table(name, model, denoiser, list(variants), records)
    summary = {"dataset": name, "model": model, "denoiser": denoiser, "seeds": seed_list,
               "variants": variants, "overrides": list(overrides),
               "runs": [summary_record(r, ("name", "params", "valid", "test", "path")) for r in records]}
    return StudyResult(Path(root).resolve(), records, table, _write(Path(root), "ablation", table, summary, []))


def ablation_table(dataset: str, model: str, denoiser: str, labels: Sequence[str], records: Sequence[dict],
                   alpha: float = 0.05) -> str:
    """Markdown: a row per variant (``none`` first), test R@20 / N@20 mean ± std over seeds and valid R@20.

    Best test mean (as printed) in bold; ``*`` where the paired t-test over test users
    (per-user metrics averaged over seeds) against ``none`` gives p < alpha
    and the variant's mean is higher (as in the comparison report).
    """
    from ..eval.pairing import significantly_better
    runs = defaultdict(list)
    for rec in records:
        runs[rec["params"]["variant"]].append(rec)
    n = max(len(v) for v in runs.values())
    stats = {(label, metric): _stats(_test_values(runs[label], metric))
             for label in labels for metric, _ in TABLE_METRICS}
    best = {metric: max(round(stats[(label, metric)][0], 4) for label in labels) for metric, _ in TABLE_METRICS}
    rows = []
    for label in labels:
        row = [label]
        for metric, _ in TABLE_METRICS:
            mean, std = stats[(label, metric)]
            marked = label != "none" and significantly_better([Path(r["path"]) for r in runs[label]],
                                                              [Path(r["path"]) for r in runs["none"]], metric, alpha)
            row.append(_cell(mean, std, n, bold=round(mean, 4) == best[metric], marked=marked))
        rows.append(row + [_cell(*_stats([r["valid"]["recall@20"] for r in runs[label]]), n)])
    header = ["variant", *(f"test {short}" for _, short in TABLE_METRICS), "valid R@20"]
    return (f"**{model}** + {denoiser} ablation on {dataset} (mean ± std over {n} seed{'s' if n > 1 else ''}; "
            f"* p < {alpha} paired t-test vs none)\n\n" + markdown(header, rows, "l" + "r" * (len(header) - 1)) + "\n")


# ------------------------------------------------------------------ files
# -------------------------------------------------------------- baselines
def baseline_study(dataset: str, models: str | Sequence[str], *, seeds: int | str | Sequence[int] = 1,
                   out: str | Path | None = None,
                   overrides: Sequence[str | Override] = (), workers: int = 1, finished_only: bool = False,
                   on_result: Callable[[dict], None] | None = None) -> StudyResult:
    """Train every backbone at its defaults (no denoiser) on ``dataset`` for each seed; write the table.

    seeds: a count N (0..N-1) or a list (``parse_seeds``).
    out: default ``studies/<dataset>-baselines``; a rerun skips finished runs
    and resumes a partial one. overrides as in :func:`noise_study`.
    finished_only: train nothing; the table holds the backbones whose runs
    have all finished, the others are listed as not run yet.
    """
    from ..data import load_dataset
    models, seed_list, overrides = _split_list(models, "models"), parse_seeds(seeds), override_pairs(overrides)
    check_task(models, "general", "baseline study")
    source = load_dataset(dataset)
    root = Path(out if out is not None else Path("studies") / f"{source.name}-baselines")
    scoped = scoped_overrides(overrides, models)
    objective = Objective()
    trials = [make_trial({"model": m, "seed": s}, {"dataset": dataset},
                         trial_defaults(objective) + [("model", m), ("denoiser", "none"), ("seed", s)]
                         + scoped[None] + scoped[m])
              for m in models for s in seed_list]
    if finished_only:
        from .runner import read_trial_record, trial_status
        records = [read_trial_record(root, t, objective) for t in validate_cells(trials)
                   if trial_status(root / t["name"], t) == "finished"]
    else:
        records = run_trials(root, validate_cells(trials), objective, workers=workers, on_result=on_result)
        raise_if_failed(records)
    done = [m for m in models if sum(r["params"]["model"] == m for r in records) == len(seed_list)]
    rows = baseline_rows([r for r in records if r["params"]["model"] in done])
    table = baseline_table(source.name, done, rows, len(seed_list))
    if len(done) < len(models):
        table += f"\nNot run yet: {', '.join(m for m in models if m not in done)}.\n"
    summary = {"dataset": source.name, "fingerprint": source.fingerprint, "models": models, "seeds": seed_list,
               "overrides": list(overrides), "rows": rows, "not_run": [m for m in models if m not in done],
               "runs": [summary_record(r, ("name", "params", "path")) for r in records]}
    return StudyResult(root.resolve(), records, table, _write(root, "baselines", table, summary, []))


def baseline_rows(records: Sequence[dict]) -> dict[str, dict]:
    """Per backbone: the mean over its seeds of validation/test R@20 and N@20, best epoch, s/epoch, s/eval."""
    from ..training.record import read_result
    by_model = defaultdict(list)
    for rec in records:
        by_model[rec["params"]["model"]].append({**rec, "result": read_result(Path(rec["path"]))})
    return {model: {
        "valid_recall@20": float(np.mean([r["valid"]["recall@20"] for r in recs])),
        **{f"test_{metric}": float(np.mean(_test_values(recs, metric))) for metric, _ in TABLE_METRICS},
        "best_epoch": float(np.mean([r["best_epoch"] for r in recs])),
        "epochs_run": float(np.mean([r["epochs_run"] for r in recs])),
        "seconds_per_epoch": float(np.mean([r["result"]["seconds_per_epoch"] for r in recs])),
        "eval_seconds": float(np.mean([r["result"]["eval_seconds"] for r in recs])),
    } for model, recs in by_model.items()}


def baseline_table(dataset: str, models: Sequence[str], rows: dict[str, dict], n_seeds: int) -> str:
    """Markdown: one row per backbone (validation R@20, test R@20 / N@20, best epoch, cost); best test R@20 bold."""
    best = max((round(rows[m]["test_recall@20"], 4) for m in models), default=None)
    header = ["model", "valid R@20", "test R@20", "test N@20", "best epoch", "epochs run", "s/epoch", "s/eval"]
    cells = []
    for m in models:
        r = rows[m]
        recall = f"{r['test_recall@20']:.4f}"
        cells.append([m, f"{r['valid_recall@20']:.4f}", Cell(recall, bold=float(recall) == best),
                      f"{r['test_ndcg@20']:.4f}", _epoch(r["best_epoch"]), f"{r['epochs_run']:g}",
                      f"{r['seconds_per_epoch']:.2f}", f"{r['eval_seconds']:.2f}"])
    return (f"Backbones at their defaults on {dataset} (no denoiser; test at the best validation epoch; "
            f"mean over {n_seeds} seed{'s' if n_seeds > 1 else ''}; s/epoch = training only, one thread)\n\n"
            + markdown(header, cells, "l" + "r" * (len(header) - 1)) + "\n")


def _epoch(value: float) -> str:
    """An epoch number as printed; a model without training (pop: best epoch −1) shows a dash."""
    return "–" if value < 0 else f"{value:g}"


def raise_if_failed(records: Sequence[dict]) -> None:
    from ..errors import TrainingError
    failed = [r for r in records if r.get("status") == "failed"]
    if failed:
        raise TrainingError(f"{len(failed)} run(s) failed (rerun the same command to retry them; finished "
                            "runs are kept):\n" + "\n".join(f"{r['path']}: {r['error']}" for r in failed))


def _write(root: Path, stem: str, table: str, summary: dict, figures: Sequence[str]) -> list[Path]:
    from ..io import write_json, write_text
    md, js = root / f"{stem}.md", root / f"{stem}.json"
    text = f"# {stem.capitalize()}\n\n{table}"
    if figures:
        text += "\n" + "\n".join(f"![{Path(f).stem}]({f})" for f in figures) + "\n"
    write_text(md, text)
    write_json(js, summary)
    return [md, js]


__all__ = ["StudyResult", "noise_study", "ablation_study", "baseline_study", "baseline_table", "ablation_variants",
           "noise_table", "ablation_table",
           "decline_rate", "noised_dataset", "noised_copy", "parse_kind", "scoped_overrides", "validate_cells",
           "raise_if_failed"]
