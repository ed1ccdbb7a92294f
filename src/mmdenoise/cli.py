"""The ``mmdenoise`` command (typer). Each command is a thin shell over the Python API."""
from __future__ import annotations

import json
import os
import re
import sys
import traceback
from pathlib import Path
from typing import List, Optional

import typer

from .errors import ConfigError, MMDenoiseError, describe_os_error, did_you_mean

#: the click that typer runs on (its own vendored copy in recent typer, click itself before)
_click_exceptions = sys.modules[typer.BadParameter.__module__]


class _Commands(typer.core.TyperGroup):
    """The top-level group: an unknown option of a command that takes ``--set`` and that names a setting
    (``mmdenoise train --epochs 5``) is answered with the override that sets it, and names given as
    arguments to a command that takes them as options (``mmdenoise train ml-100k lightgcn``) with the
    options that take them."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _click_exceptions.NoSuchOption as exc:
            hint = _set_hint(exc)
            if not hint:
                raise
            raise _click_exceptions.NoSuchOption(exc.option_name, exc.message + hint, ctx=exc.ctx) from None
        except _click_exceptions.UsageError as exc:
            hint = _named_options_hint(exc)
            if not hint:
                raise
            raise _click_exceptions.UsageError(exc.message + hint, ctx=exc.ctx) from None


#: the options that take names, in the order a user would give them as arguments
NAME_OPTIONS = ("--dataset", "--model", "--denoiser")


def _named_options_hint(exc) -> str:
    """`` (did you mean --dataset ml-100k --model lightgcn?)`` for the usage error ``exc`` of a command
    that got extra arguments and takes at least as many of ``NAME_OPTIONS`` not given on the command
    line; "" otherwise."""
    extra = re.fullmatch(r"Got unexpected extra argument\S* \((.*)\)", exc.message or "")
    command = exc.ctx.command if exc.ctx is not None else None
    if extra is None or command is None:
        return ""
    given = {p.name for p in command.params
             if getattr(exc.ctx.get_parameter_source(p.name), "name", None) == "COMMANDLINE"}
    taken = [name for name in NAME_OPTIONS if any(name in p.opts and p.name not in given for p in command.params)]
    words = extra.group(1).split()
    if not words or len(words) > len(taken):
        return ""
    return f" (did you mean {' '.join(f'{o} {w}' for o, w in zip(taken, words))}?)"


def _set_hint(exc) -> str:
    """`` (did you mean --set train.epochs=VALUE?)`` for NoSuchOption ``exc`` when its command takes
    ``--set``, none of its options is close (``--seed`` for ``--seeds``; click's own suggestions cast a
    wider net: ``--help`` for ``--lr``) and the option names a setting; "" otherwise."""
    command = exc.ctx.command if exc.ctx is not None else None
    if (did_you_mean(exc.option_name, exc.possibilities or []) or command is None
            or not any("--set" in p.opts for p in command.params)):
        return ""
    from .api import setting_keys
    keys = setting_keys(exc.option_name.lstrip("-").replace("-", "_"))
    return f" (did you mean {' or '.join(f'--set {k}=VALUE' for k in keys)}?)" if keys else ""


app = typer.Typer(cls=_Commands, add_completion=False, no_args_is_help=True,
                  help="Multi-modal recommendation with plug-and-play denoising.")
data_app = typer.Typer(no_args_is_help=True, help="Build, generate, noise, inspect and export datasets.")
app.add_typer(data_app, name="data")
plot_app = typer.Typer(no_args_is_help=True, help="Figures from run folders.")
app.add_typer(plot_app, name="plot")
study_app = typer.Typer(no_args_is_help=True,
                        help="Noise-robustness studies, ablations and the claims benchmark (grids of runs).")
app.add_typer(study_app, name="study")

# Option help for names: static, so that `mmdenoise --help` does not import torch; `list` shows them all.
DATASET_HELP = "registered name (ml-100k, synth-tiny, ...; `mmdenoise list datasets`) or a dataset folder"
MODEL_HELP = ("model name; it decides the task: general (pop, mf, lightgcn, vbpr, freedom, ...) or sequential "
              "(demure, base, gru4rec, ...); `mmdenoise list models`")
DENOISER_HELP = "denoiser name (none, tce, rce, wbpr, bod, guider, damrs, ...; `mmdenoise list denoisers`)"
RUN_DATA_HELP = ("the data the run was trained on, where its config.yaml no longer leads (a moved folder; "
                 "the checkpoint checks it is the same data)")
SEEDS_HELP = ("seeds: a count N meaning 0..N-1 (3 = 0,1,2), or a comma-separated list (0,4,7; one seed: '4,')")


#: the options of ``_main``, which ``main`` accepts anywhere on the command line (no command has its own -q or -v)
GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")


@app.callback()
def _main(quiet: bool = typer.Option(False, "--quiet", "-q", help="print warnings and results only"),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="also print debug lines")):
    """Multi-modal recommendation with plug-and-play denoising. Progress lines go to stderr."""
    from .log import configure
    configure(-1 if quiet else (1 if verbose else 0))


#: Every dataset `data build` builds, with what a cold build costs on 2 cores (measured; README "Datasets"),
#: said when a build starts.
BUILD_TIMES = {"ml-100k": "15-20 s on 2 cores, plus a download the first time",
               "ml-1m": "about 1 min on 2 cores, plus a 14 MB download the first time",
               "book-crossing": "about 5 min on 2 cores, plus a 27 MB download the first time",
               "amazon": "minutes, by catalogue size"}
TABLE_KS = (10, 20, 50)
TABLE_METRICS = ("recall", "ndcg", "precision", "map", "hit")


def metrics_table(columns: dict[str, dict[str, float]], ks=None) -> str:
    """A plain-text table: one row per metric@k, one column per named metrics dict.

    ks: the cut-offs shown; default ``TABLE_KS`` when the run evaluated the default cut-offs, else
    every cut-off it evaluated (``train.ks``).
    """
    from .eval.evaluator import DEFAULT_KS
    names = list(columns)
    if ks is None:
        present = sorted({int(key.partition("@")[2]) for n in names for key in columns[n] if "@" in key})
        ks = TABLE_KS if set(present) == set(DEFAULT_KS) else present
    lines = [f"{'metric':<14}" + "".join(f"{n:>12}" for n in names)]
    for metric in TABLE_METRICS:
        for k in ks:
            key = f"{metric}@{k}"
            if all(key in columns[n] for n in names):
                lines.append(f"{key:<14}" + "".join(f"{columns[n][key]:>12.4f}" for n in names))
    return "\n".join(lines)


def _parse_ratio(spec: str, option: str) -> tuple[str, float]:
    if ":" not in spec:
        raise typer.BadParameter(f"{spec!r}: expected MODALITY:RATIO, e.g. image:0.1", param_hint=option)
    modality, ratio = spec.rsplit(":", 1)
    try:
        return modality, float(ratio)
    except ValueError:
        raise typer.BadParameter(f"{spec!r}: {ratio!r} is not a number", param_hint=option) from None


# -------------------------------------------------------------------- data
@data_app.command("build")
def data_build(
    name: str = typer.Argument(..., help="ml-100k, ml-1m, book-crossing, or amazon (raw files: --ratings, --meta, "
                                         "--out)"),
    out: Optional[Path] = typer.Option(None, help="output folder (default: the data home)"),
    seed: int = typer.Option(0, help="split seed"),
    kg: bool = typer.Option(False, "--kg", help="ml-100k: add the knowledge-graph modality"),
    chronological: bool = typer.Option(False, help="ml-100k, ml-1m: chronological instead of random split"),
    min_rating: Optional[float] = typer.Option(None, help="ml-1m, book-crossing: keep ratings >= this "
                                                          "(default: every rating is an interaction)"),
    core: Optional[int] = typer.Option(None, help="ml-1m, book-crossing: keep the k-core after filtering "
                                                  "(default 1 for ml-1m, 5 for book-crossing)"),
    ratings: Optional[Path] = typer.Option(None, help="amazon: ratings_<Category>.csv"),
    meta: Optional[Path] = typer.Option(None, help="amazon: meta_<Category>.json.gz"),
    image_features: Optional[Path] = typer.Option(None, help="amazon: image_features_<Category>.b"),
    overwrite: bool = typer.Option(False, help="rebuild even if the folder exists"),
):
    """Build a real dataset in the MMRec layout (cached: a second call is instant)."""
    from .data.registry import dataset_folder
    only = {"--kg": (kg, ("ml-100k",)), "--chronological": (chronological, ("ml-100k", "ml-1m")),
            "--min-rating": (min_rating is not None, ("ml-1m", "book-crossing")),
            "--core": (core is not None, ("ml-1m", "book-crossing"))}
    for option, (given, names) in only.items():
        if given and name not in names:
            raise ConfigError(f"data build: {option} applies to {', '.join(names)} only, not {name}")
    folder_out = out or dataset_folder(name)
    filters = {"min_rating": min_rating, **({} if core is None else {"core": core})}
    if name in BUILD_TIMES and (overwrite or not folder_out.is_dir()):
        from .log import get_logger
        get_logger(__name__).info("building %s into %s (%s; cached afterwards)", name, folder_out,
                                  BUILD_TIMES[name])
    if name == "ml-100k":
        from .data.builders.ml100k import build_ml100k
        folder = build_ml100k(folder_out, seed=seed, with_kg=kg, overwrite=overwrite, chronological=chronological)
    elif name == "ml-1m":
        from .data.builders.ml1m import build_ml1m
        folder = build_ml1m(folder_out, seed=seed, chronological=chronological, overwrite=overwrite, **filters)
    elif name == "book-crossing":
        from .data.builders.bookcrossing import build_book_crossing
        folder = build_book_crossing(folder_out, seed=seed, overwrite=overwrite, **filters)
    elif name == "amazon":
        missing = [option for option, value in (("--ratings", ratings), ("--meta", meta), ("--out", out))
                   if value is None]
        if missing:
            raise typer.BadParameter(f"amazon needs --ratings, --meta and --out; missing {', '.join(missing)}")
        from .data.builders.amazon import build_amazon
        folder = build_amazon(ratings, meta, out, image_features=image_features, seed=seed,
                              overwrite=overwrite)
    else:
        raise ConfigError(f"data build: unknown dataset {name!r}{did_you_mean(name, BUILD_TIMES)}; buildable: "
                          f"{', '.join(BUILD_TIMES)}")
    typer.echo(str(folder))


@data_app.command("synth")
def data_synth(
    preset: str = typer.Option(..., help="tiny, baby, sports, clothing or microlens; seq-tiny or seq-small "
                                         "(sequential, planted points of interest)"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(..., help="output folder"),
    overwrite: bool = typer.Option(False),
):
    """Generate a synthetic dataset with the shape of a paper dataset and a planted truth."""
    if preset.startswith("seq-"):
        from .data.seqsynth import generate_sequential
        typer.echo(str(generate_sequential(preset, seed=seed, out=out, overwrite=overwrite)))
        return
    from .data.synth import generate
    typer.echo(str(generate(preset, seed=seed, out=out, overwrite=overwrite)))


@data_app.command("noise")
def data_noise(
    src: str = typer.Argument(..., help="clean dataset: " + DATASET_HELP),
    out: Path = typer.Option(..., help="output folder"),
    add: float = typer.Option(0.0, help="fraction of |train| of random unseen pairs to add"),
    remove: float = typer.Option(0.0, help="fraction of training interactions to drop"),
    swap: List[str] = typer.Option([], help="MODALITY:RATIO rows replaced by another item's"),
    misalign: List[str] = typer.Option([], help="MODALITY:RATIO rows permuted across items"),
    seed: int = typer.Option(0),
    overwrite: bool = typer.Option(False, help="replace --out if it exists"),
):
    """Plant noise in the training split; write a new folder with its ground truth."""
    from .data import load_dataset
    from .data.noise import write_noised
    swaps = dict(_parse_ratio(s, "--swap") for s in swap)
    misaligns = dict(_parse_ratio(s, "--misalign") for s in misalign)
    if not (add or remove or any(swaps.values()) or any(misaligns.values())):
        from .log import get_logger
        get_logger(__name__).warning("no noise given (--add, --remove, --swap, --misalign): %s will be an "
                                     "unchanged copy of %s (a noise-free control)", out, src)
    folder = write_noised(load_dataset(src), out, add=add, remove=remove, swap=swaps, misalign=misaligns,
                          seed=seed, overwrite=overwrite)
    typer.echo(str(folder))


@data_app.command("info")
def data_info(dataset: str = typer.Argument(..., help=DATASET_HELP)):
    """Users, items, interactions per split, sparsity, modalities, noise summary."""
    from .data import load_dataset
    from .data.info import dataset_info, format_info
    typer.echo(format_info(dataset_info(load_dataset(dataset))))


@data_app.command("stats")
def data_stats(
    datasets: List[str] = typer.Argument(..., help="registered names or folders"),
    out: Path = typer.Option(Path("docs/results/datasets.md"), help="Markdown page (a .json is written beside)"),
    k: int = typer.Option(10, help="neighbours compared per item (overlap@k)"),
):
    """Statistics page: users, items, density, and per modality its mean cosine and kNN/co-interaction overlap."""
    from .experiments.datasets import write_stats_page
    page = write_stats_page(datasets, out, k=k)
    typer.echo(page.read_text(encoding="utf-8"))
    typer.echo(f"written: {page}")


@data_app.command("export")
def data_export(dataset: str = typer.Argument(..., help=DATASET_HELP),
                out: Path = typer.Option(..., help="output folder"), overwrite: bool = typer.Option(False)):
    """Write any readable dataset in the MMRec layout."""
    from .data import load_dataset, write_mmrec
    typer.echo(str(write_mmrec(load_dataset(dataset), out, overwrite=overwrite)))


# ------------------------------------------------------------------ train
@app.command("train")
def train_cmd(
    dataset: Optional[str] = typer.Option(None, "-d", "--dataset", help=DATASET_HELP + " (required unless --config "
                                          "names one)", show_default=False),
    model: Optional[str] = typer.Option(None, "-m", "--model", help=MODEL_HELP + " (required unless --config "
                                        "names one)", show_default=False),
    denoiser: Optional[str] = typer.Option(None, "--denoiser", help=DENOISER_HELP + "; general models only "
                                           "(default: none)", show_default=False),
    seed: Optional[int] = typer.Option(None, help="training seed (default: 0)", show_default=False),
    config: Optional[Path] = typer.Option(None, help="YAML config (the shape of a run's config.yaml)"),
    set_: List[str] = typer.Option([], "--set", help="override, e.g. train.lr=0.01 or n_layers=3 (repeatable; "
                                   "`mmdenoise list NAME`: the settings of a model, denoiser or train)"),
    out: Optional[Path] = typer.Option(None, help="run folder (default: runs/<dataset>-<model>-...-<time>)",
                                       show_default=False),
    resume: bool = typer.Option(False, help="continue an interrupted run from the checkpoint in --out"),
    overwrite: bool = typer.Option(False, help="replace another run in --out (never a dataset folder)"),
    json_out: bool = typer.Option(False, "--json", help="print result.json instead of a table"),
    tensorboard: bool = typer.Option(False, "--tensorboard",
                                     help="also log per-epoch metrics to RUN/tensorboard/ (tensorboard extra)"),
):
    """Train a model and report validation and test metrics.

    The model decides the task: general models (any denoiser) or sequential ones (Demure and its baselines).
    """
    from .api import train
    run = train(dataset, model, denoiser, seed=seed, config=config, overrides=set_, out=out,
                resume=resume, overwrite=overwrite, tensorboard=tensorboard)
    _print_run(run, json_out)


@app.command("evaluate")
def evaluate_cmd(run_dir: Path = typer.Argument(..., help="a run folder"),
                 dataset: Optional[str] = typer.Option(None, "-d", "--dataset", help=RUN_DATA_HELP,
                                                       show_default=False)):
    """Re-evaluate a run's best checkpoint on validation and test."""
    from .api import evaluate_run
    from .data import load_dataset
    valid, test = evaluate_run(run_dir, None if dataset is None else load_dataset(dataset))
    typer.echo(metrics_table({"valid": valid.metrics, "test": test.metrics}))


@app.command("recommend")
def recommend_cmd(
    run_dir: Path = typer.Argument(..., help="a run folder (general or sequential)"),
    users: str = typer.Option(..., "--users", "-u", help="user ids, comma-separated (0-based, as in the "
                                                         "dataset's .inter file)"),
    k: int = typer.Option(10, "-k", help="items per user"),
    exclude: str = typer.Option("train", help="train: mask what the test evaluation masks (training items; "
                                              "a sequential user's history); all: every known interaction"),
    fmt: str = typer.Option("table", "--format", help="table, json or tsv"),
    dataset: Optional[str] = typer.Option(None, "-d", "--dataset", help=RUN_DATA_HELP, show_default=False),
):
    """Each user's top-K items from the trained model (rebuilt from the run folder)."""
    if fmt not in ("table", "json", "tsv"):
        raise typer.BadParameter(f"{fmt!r}: formats are table, json, tsv", param_hint="--format")
    try:
        ids = [int(u) for u in users.split(",") if u.strip()]
    except ValueError:
        raise typer.BadParameter(f"{users!r}: expected comma-separated integers", param_hint="--users") from None
    from .api import Run
    from .data import load_dataset
    recs = Run.load(run_dir, None if dataset is None else load_dataset(dataset)).recommend(ids, k, exclude=exclude)
    rows = recs.rows()
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
    elif fmt == "tsv":
        typer.echo("user\trank\titem\tscore\ttitle")
        for r in rows:
            title = (r["title"] or "").replace("\t", " ")
            typer.echo(f"{r['user']}\t{r['rank']}\t{r['item']}\t{r['score']:.6g}\t{title}")
    else:
        for j, user in enumerate(recs.users):
            typer.echo(f"user {user}:")
            for rank in range(recs.items.shape[1]):
                item = recs.items[j, rank]
                if item < 0:  # the user has no more items to recommend
                    break
                title = recs.titles[j, rank] if recs.titles is not None else None
                shown = f"{title}  (item {item}, " if title else f"item {item}  ("  # no title: the id once
                typer.echo(f"  {rank + 1:>3}. {shown}score {recs.scores[j, rank]:.4f})")


@app.command("list")
def list_cmd(kind: Optional[str] = typer.Argument(None, help="models, denoisers or datasets (all three if left "
                                                  "out); or a model, a denoiser, train or sequence: its settings",
                                                  show_default=False)):
    """The registered models, denoisers or datasets; with a name, its settings (`mmdenoise list guider`).

    One line each (needs features = uses item content); a name: each setting's --set key, default, range, symbol."""
    from .catalog import KINDS, format_rows, rows, settings_text
    if kind in KINDS:
        typer.echo(format_rows(rows(kind)))
        return
    if kind is not None:
        typer.echo(settings_text(kind))
        return
    typer.echo("\n\n".join(f"{name}:\n{format_rows(rows(name))}" for name in KINDS))


@app.command("bench")
def bench_cmd(
    dataset: Optional[str] = typer.Option(None, "-d", "--dataset", help=DATASET_HELP + " (not with --scale)",
                                          show_default=False),
    model: str = typer.Option(..., "-m", "--model", help="general model name (`mmdenoise list models`)"),
    denoiser: str = typer.Option("none", "--denoiser", help=DENOISER_HELP),
    epochs: int = typer.Option(5, help="epochs to time (the first is warm-up)"),
    set_: List[str] = typer.Option([], "--set"),
    json_out: bool = typer.Option(False, "--json"),
    scale: bool = typer.Option(False, "--scale", help="time the model on each of --presets (each in a fresh "
                                                      "process) and fit the log-log slope of cost vs interactions"),
    presets: Optional[str] = typer.Option(None, help="--scale: comma-separated registered names or folders "
                                                     "(default synth-tiny,synth-baby,synth-sports,synth-clothing,"
                                                     "synth-microlens)", show_default=False),
    out: Optional[Path] = typer.Option(None, help="--scale: folder for scale.json, scale.md and scale.png "
                                                  "(default docs/results/scale/MODEL, or MODEL-DENOISER)",
                                       show_default=False),
):
    """Seconds per epoch, seconds per full evaluation and peak memory; with --scale, across datasets."""
    if scale:
        if dataset is not None:
            raise ConfigError("bench: --scale times the model on --presets, not on -d/--dataset; give one of them")
        from .bench import SCALE_PRESETS, bench_scale
        names = SCALE_PRESETS if presets is None else [p.strip() for p in presets.split(",") if p.strip()]
        folder = out or Path("docs/results/scale") / (model if denoiser == "none" else f"{model}-{denoiser}")
        result = bench_scale(model, denoiser, presets=names, epochs=epochs, overrides=set_, out=folder)
        typer.echo(json.dumps(result.report, indent=2) if json_out else result.markdown.rstrip("\n"))
        typer.echo("written: " + ", ".join(str(f) for f in result.files), err=json_out)
        return
    if dataset is None:
        raise ConfigError("bench needs -d/--dataset (or --scale to time the model across datasets)")
    for option, given in (("--presets", presets is not None), ("--out", out is not None)):
        if given:
            raise ConfigError(f"bench: {option} applies to --scale only")
    from .bench import bench
    result = bench(dataset, model, denoiser, epochs=epochs, overrides=set_)
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        typer.echo(f"{key:<{width}}  {shown}")


# -------------------------------------------------------------------- plot
@plot_app.command("scores")
def plot_scores(
    runs: List[Path] = typer.Argument(..., help="run folders trained with planted added interactions"),
    out: Path = typer.Option(..., help="PNG file to write"),
):
    """Clean vs injected interactions: each run's denoiser scores, side by side (GUIDER Fig. 4)."""
    from .experiments.plots import score_distributions
    typer.echo(score_distributions(runs, out))


@app.command("report")
def report_cmd(
    runs_dir: Path = typer.Argument(..., help="a folder of run folders, or a claims folder (with claims.json)"),
    out: Optional[Path] = typer.Option(None, help="report file (default RUNS_DIR/report.md or report.tex)"),
    fmt: str = typer.Option("md", "--format", help="md or latex (booktabs)"),
):
    """Comparison table (bold best, * paired t-test vs none), detection AUCs and PNG figures of every run found.

    On a claims folder (`study claims`): recompute every Δ and p of its page from the evidence files alone.
    """
    from .experiments.claims import CLAIMS_JSON, check_claims
    if (runs_dir / CLAIMS_JSON).is_file():
        from .experiments.claims.page import read_claims
        from .experiments.claims.screens import screens_summary
        cells = check_claims(runs_dir)  # claims.json read and checked
        data = read_claims(runs_dir)
        alone = len(data.get("against_alone", []))
        typer.echo(f"{runs_dir}: every Δ and p of {cells} cell(s)"
                   + (f" and {alone} comparison(s) against the backbone alone" if alone else "")
                   + " recomputed from the evidence files: they match; the page is the rendering of claims.json")
        typer.echo(f"robustness (the page's sections): {screens_summary(data)}")
        return
    from .experiments.report import write_report
    path = write_report(runs_dir, out, fmt=fmt)
    typer.echo(path.read_text(encoding="utf-8"))
    typer.echo(f"written: {path}")


def _run_group(text: str, side: str) -> list[Path]:
    """The run folders of one side of `compare`: one folder, or a comma-separated list (a method's seeds);
    a part with a wildcard (quoted, ``'studies/x/*denoiser=tce*'``) stands for the folders it matches."""
    import glob

    from .training import record
    runs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if glob.has_magic(part):
            matched = sorted(Path(m) for m in glob.glob(part) if Path(m).is_dir())
            if not matched:
                raise ConfigError(f"compare: {side}: no folder matches {part!r}")
            runs += matched
        else:
            folder = Path(part)
            inner = sorted(r.name for r in folder.iterdir() if (r / record.PER_USER_FILE).is_file()) \
                if folder.is_dir() else []
            if inner and not (folder / record.PER_USER_FILE).is_file():  # a method's folder of seeds, say
                raise ConfigError(f"compare: {side}: {folder} holds runs ({', '.join(inner[:4])}"
                                  f"{', ...' if len(inner) > 4 else ''}), it is not one: name them comma-separated, "
                                  f"or quote a wildcard ('{folder / '*'}' for all of them)")
            runs.append(folder)
    if not runs:
        raise ConfigError(f"compare: {side} names no run folder")
    return runs  # a folder that is no finished run is the per-user reader's error (record.read_per_user)


def _group_label(runs: list[Path]) -> str:
    """``runs/tce-s0 and 1 more (lightgcn + tce on ml-100k, seeds 0, 1)`` from the runs' result.json."""
    from .training import record
    results = [record.read_result(run) for run in runs]
    first = results[0]
    what = first.get("model", "?") + (f" + {first['denoiser']}" if first.get("task") != "sequential" else "")
    seeds = ", ".join(str(r.get("seed")) for r in results)
    more = f" and {len(runs) - 1} more" if len(runs) > 1 else ""
    return (f"{runs[0]}{more} ({what} on {first.get('dataset', {}).get('name', '?')}, "
            f"seed{'s' if len(runs) > 1 else ''} {seeds})")


@app.command("compare")
def compare_cmd(
    a: str = typer.Argument(..., help="run folder A, or comma-separated folders (one method's seeds), or a quoted "
                                      "wildcard matching them ('studies/s/*denoiser=tce*level=0.2*')"),
    b: str = typer.Argument(..., help="run folder B, the same way"),
    metric: List[str] = typer.Option(["recall@20", "ndcg@20"], "--metric",
                                     help="test metric (repeatable; also detection_auc)"),
    json_out: bool = typer.Option(False, "--json", help="print the rows as JSON"),
):
    """Paired comparison of two runs (or two groups of seeds) on the same data: Δ, its 95% CI and p per metric.

    Users are those both sides evaluated; a side of several runs is averaged user by user first.
    """
    from .eval.pairing import compare_runs
    from .eval.significance import p_text
    from .experiments.tables import markdown
    runs_a, runs_b = _run_group(a, "A"), _run_group(b, "B")
    rows = compare_runs(runs_a, runs_b, list(metric))
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"A: {_group_label(runs_a)}\nB: {_group_label(runs_b)}\n{rows[0]['users']} test users paired\n")
    typer.echo(markdown(["metric", "A", "B", "Δ (A − B)", "95% CI", "p (t-test)", "p (Wilcoxon)"],
                        [[r["metric"], f"{r['mean_a']:.4f}", f"{r['mean_b']:.4f}", f"{r['delta']:+.4f}",
                          f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]", p_text(r["p_ttest"]), p_text(r["p_wilcoxon"])]
                         for r in rows], "lrrrrrr"))


# ------------------------------------------------------- sweeps and studies
def _study_lines(result) -> None:
    """A finished study's table, then the files it wrote."""
    typer.echo(result.table)
    typer.echo("written: " + ", ".join(str(p) for p in result.files))


def _hours_left_text(row: dict) -> str:
    """A plan row's estimated hours, with how many runs have no measured run to go by."""
    text = f"{row['hours']:.1f}"
    return f"{text} + {row['unestimated']} unmeasured" if row["unestimated"] else text


def _trial_line(record: dict) -> None:
    value = record.get("objective")
    shown = f"{value:.4f}" if value is not None else f"failed: {record.get('error')}"
    typer.echo(f"{record['status']:>8}  {record['name']}  {shown}")


@app.command("sweep")
def sweep_cmd(
    spec: Path = typer.Argument(..., help="sweep spec (YAML): base run, search space, objective"),
    backend: str = typer.Option("local", help="local (processes on this machine) or ray (Ray Tune)"),
    workers: int = typer.Option(1, help="trials run at the same time (one thread each)"),
    out: Optional[Path] = typer.Option(None, help="sweep folder (default sweeps/<spec name>); rerun to resume"),
    address: Optional[str] = typer.Option(None, help="ray: address of a Ray cluster (default: a local instance)"),
    set_: List[str] = typer.Option([], "--set", help="extra override for every trial, e.g. train.epochs=50"),
):
    """Grid/random search selected on validation; finished trials are skipped when run again."""
    from .config import override_pairs
    from .experiments.sweep import SWEEP_MD, sweep
    result = sweep(spec, out, backend=backend, workers=workers, address=address, overrides=override_pairs(set_),
                   on_result=_trial_line)
    typer.echo((result.root / SWEEP_MD).read_text(encoding="utf-8"))
    typer.echo(f"written: {result.root / SWEEP_MD}, {result.root / 'sweep.json'}")
    if result.failed:
        typer.echo(f"error: {len(result.failed)} trial(s) failed; rerun the same command to retry them", err=True)
        raise typer.Exit(1)


@study_app.command("noise")
def study_noise_cmd(
    dataset: str = typer.Option(..., "-d", "--dataset", help="clean dataset: " + DATASET_HELP),
    models: str = typer.Option(..., "-m", "--models", help="general models, comma-separated (`mmdenoise list "
                                                           "models`)"),
    denoisers: str = typer.Option("none", "--denoisers", help="denoisers, comma-separated, e.g. none,tce,guider "
                                                              "(`mmdenoise list denoisers`)"),
    kind: str = typer.Option("add", help="add, remove, swap:MODALITY or misalign:MODALITY"),
    levels: str = typer.Option("0,0.05,0.1,0.15,0.2", help="noise ratios, comma-separated (0 = clean)"),
    seeds: str = typer.Option("3", help=SEEDS_HELP + "; each the noise draw and the training seed"),
    out: Optional[Path] = typer.Option(None, help="study folder (default studies/<dataset>-noise-<kind>)"),
    workers: int = typer.Option(1, help="runs at the same time (one thread each)"),
    backend: str = typer.Option("local", help="local or ray"),
    address: Optional[str] = typer.Option(None, help="ray: cluster address"),
    set_: List[str] = typer.Option([], "--set", help="override for every run, e.g. train.epochs=100; "
                                   "NAME:key=value for the runs of one backbone or denoiser"),
):
    """Recall@20 vs noise level for every backbone × denoiser: table (mean ± std), decline rate, PNG curves."""
    from .config import override_pairs
    from .experiments.study import noise_study
    result = noise_study(dataset, models, denoisers, kind=kind, levels=levels, seeds=seeds, out=out,
                         overrides=override_pairs(set_), backend=backend, workers=workers, address=address,
                         on_result=_trial_line)
    _study_lines(result)


@study_app.command("claims")
def study_claims_cmd(
    spec: Path = typer.Option(..., help="claims spec (YAML): datasets, budget, seeds, methods and grids, claims"),
    work: Path = typer.Option(Path("studies/claims"), help="folder of the runs (noised data, tuning, final runs)"),
    out: Optional[Path] = typer.Option(None, help="claims folder: evidence and claims.json (default: the spec's "
                                                  "folder); the page is OUT.md beside it", show_default=False),
    datasets: Optional[str] = typer.Option(None, help="train only these datasets of the spec, comma-separated "
                                                      "(the page covers all)", show_default=False),
    backbones: Optional[str] = typer.Option(None, help="train only these backbones' runs, comma-separated (e.g. "
                                                       "the cheap ones first)", show_default=False),
    methods: Optional[str] = typer.Option(None, help="train only these methods' runs, comma-separated",
                                          show_default=False),
    stage: str = typer.Option("all", help="tune, final, page (evidence and page; trains nothing), all, or plan "
                                          "(prints what is left per dataset, backbone and method; writes nothing)"),
    workers: int = typer.Option(1, help="runs at the same time (one thread each)"),
    backend: str = typer.Option("local", help="local or ray"),
    hours: Optional[float] = typer.Option(None, help="start only the runs expected to end within this many hours "
                                                     "(estimated as --stage plan does; a run with no estimate "
                                                     "starts and keeps its worker): for a session or job with "
                                                     "a time limit", show_default=False),
):
    """Do the papers' claims hold? Equal tuning on validation, seeds, per-user evidence, paired tests.

    Each method's budget on validation is the same; each selection runs at several seeds; a rerun resumes."""
    from .experiments.claims import claims_plan, claims_study
    from .experiments.claims.study import check_hours
    check_hours(hours, stage)
    if stage == "plan":
        from .experiments.tables import markdown
        rows = claims_plan(spec, work, out=out, datasets=datasets, backbones=backbones, methods=methods)
        typer.echo(markdown(["dataset", "tuning trials left", "final runs left", "final runs waiting on tuning",
                             "pairs cut", "hours left (est.)"],
                            [[r["dataset"], str(r["tuning"]), str(r["final"]), str(r["waiting"]), str(r["cut"]),
                              _hours_left_text(r)] for r in rows], "lrrrrr"))
        typer.echo("\n" + markdown(["dataset", "backbone", "runs left", "hours left (est.)"],
                                   [[r["dataset"], backbone, str(part["runs"]), _hours_left_text(part)]
                                    for r in rows for backbone, part in r["backbones"].items()], "llrr"))
        typer.echo("\n" + markdown(["dataset", "backbone", "method", "runs left", "hours left (est.)"],
                                   [[r["dataset"], backbone, method, str(m["runs"]), _hours_left_text(m)]
                                    for r in rows for backbone, part in r["backbones"].items()
                                    for method, m in part["methods"].items()], "lllrr"))
        typer.echo("hours left: one thread, from the measured time of the runs committed (else of those "
                   "finished in the work folder): the same method there, else scaled from another dataset by "
                   "the backbone's other methods, else any method on the backbone there; less what a run in "
                   "the work folder has spent; runs waiting on tuning are not in it")
        return
    result = claims_study(spec, work, out=out, datasets=datasets, backbones=backbones, methods=methods, stage=stage,
                          workers=workers, backend=backend, hours=hours, on_result=_trial_line)
    if result.deferred:
        typer.echo(f"{result.deferred} run(s) not started: expected to end after --hours {hours:g}; "
                   "rerun later to train them")
    if stage in ("page", "all"):
        typer.echo(f"{result.done} cell(s) done, {result.pending} pending")
        typer.echo(f"written: {result.page}, {result.json}")
    if result.failed:
        typer.echo(f"error: {len(result.failed)} run(s) failed; rerun the same command to retry them", err=True)
        raise typer.Exit(1)


@study_app.command("ablation")
def study_ablation_cmd(
    dataset: str = typer.Option(..., "-d", "--dataset", help=DATASET_HELP),
    model: str = typer.Option(..., "-m", "--model", help="general model (`mmdenoise list models`)"),
    denoiser: str = typer.Option(..., "--denoiser", help="guider or damrs (its variants and none are run)"),
    seeds: str = typer.Option("1", help=SEEDS_HELP),
    out: Optional[Path] = typer.Option(None, help="study folder (default studies/<dataset>-ablation-<model>-<d>)"),
    workers: int = typer.Option(1),
    backend: str = typer.Option("local", help="local or ray"),
    address: Optional[str] = typer.Option(None, help="ray: cluster address"),
    set_: List[str] = typer.Option([], "--set"),
):
    """Every variant of a denoiser (GUIDER Table 3, DA-MRS Tables 3-4) plus none, in one table."""
    from .config import override_pairs
    from .experiments.study import ablation_study
    result = ablation_study(dataset, model, denoiser, seeds=seeds, out=out, overrides=override_pairs(set_),
                            backend=backend, workers=workers, address=address, on_result=_trial_line)
    _study_lines(result)


@study_app.command("baselines")
def study_baselines_cmd(
    dataset: str = typer.Option(..., "-d", "--dataset", help="registered name or folder (clean)"),
    models: str = typer.Option("pop,mf,lightgcn,vbpr,freedom,bm3", "-m", "--models",
                               help="backbones, comma-separated"),
    seeds: str = typer.Option("1", help=SEEDS_HELP),
    out: Optional[Path] = typer.Option(None, help="study folder (default studies/<dataset>-baselines)"),
    workers: int = typer.Option(1, help="runs at the same time (one thread each)"),
    set_: List[str] = typer.Option([], "--set", help="override for every run; NAME:key=value for one backbone"),
    finished_only: bool = typer.Option(False, "--finished-only",
                                       help="train nothing: the table of the finished backbones, the rest listed"),
):
    """Backbones at their defaults on one dataset: test R@20 / N@20 at the best validation epoch and s/epoch."""
    from .config import override_pairs
    from .experiments.study import baseline_study
    result = baseline_study(dataset, models, seeds=seeds, out=out, overrides=override_pairs(set_), workers=workers,
                            finished_only=finished_only, on_result=_trial_line)
    _study_lines(result)


@study_app.command("sensitivity")
def study_sensitivity_cmd(
    dataset: str = typer.Option(..., "-d", "--dataset", help=DATASET_HELP + " (with timestamps)"),
    model: str = typer.Option("demure", "-m", "--model", help="the sequential denoiser whose rates are swept "
                                                              "(demure)"),
    grid: str = typer.Option("gamma", help="gamma (γ_i/γ_m, Demure Table 3) or j (J pairs, Table 4)"),
    seeds: str = typer.Option("1", help=SEEDS_HELP),
    out: Optional[Path] = typer.Option(None, help="study folder (default: studies/<dataset>-demure-<grid>)",
                                       show_default=False),
    set_: List[str] = typer.Option([], "--set", help="override for every run, e.g. train.lr=0.003"),
    finished_only: bool = typer.Option(False, "--finished-only",
                                       help="train nothing: table of the finished points, the rest 'not run'"),
    workers: int = typer.Option(1, help="runs at the same time (one thread each)"),
    backend: str = typer.Option("local", help="local or ray"),
    address: Optional[str] = typer.Option(None, help="ray: cluster address"),
):
    """Demure's sensitivity (sequential): the base model and Demure at every grid point, one table (rerun resumes)."""
    if model != "demure":
        raise typer.BadParameter(f"{model!r}: the sensitivity grids are Demure's (-m demure)", param_hint="-m")
    from .config import override_pairs
    from .sequential.study import sensitivity_study
    folder = out or Path("studies") / f"{Path(dataset).name}-demure-{grid}"
    path = sensitivity_study(dataset, grid, folder, seeds=seeds, overrides=override_pairs(set_),
                             train=not finished_only, backend=backend, workers=workers, address=address,
                             on_result=_trial_line)
    typer.echo(path.read_text(encoding="utf-8"))
    typer.echo(f"written: {path}")


@study_app.command("splits")
def study_splits_cmd(
    dataset: str = typer.Option(..., "-d", "--dataset", help=DATASET_HELP + " (with timestamps)"),
    models: str = typer.Option("base,demure", "-m", "--models",
                               help="sequential models, comma-separated; the first is the reference"),
    splits: str = typer.Option("3", help="user split seeds (sequence.split_seed), as --seeds: a count or a list"),
    seeds: str = typer.Option("1", help=SEEDS_HELP + "; per-user values averaged over them"),
    out: Optional[Path] = typer.Option(None, help="study folder (default: studies/<dataset>-seq-splits)",
                                       show_default=False),
    set_: List[str] = typer.Option([], "--set", help="override for every run, e.g. train.lr=0.003"),
    workers: int = typer.Option(1, help="runs at the same time (one thread each)"),
    backend: str = typer.Option("local", help="local or ray"),
    address: Optional[str] = typer.Option(None, help="ray: cluster address"),
):
    """Sequential models over several user splits: per-split and pooled paired tests against the first."""
    from .config import override_pairs
    from .sequential.study import split_study
    folder = out or Path("studies") / f"{Path(dataset).name}-seq-splits"
    path = split_study(dataset, [m.strip() for m in models.split(",") if m.strip()], folder,
                       splits=splits, seeds=seeds, overrides=override_pairs(set_), backend=backend,
                       workers=workers, address=address, on_result=_trial_line)
    typer.echo(path.read_text(encoding="utf-8"))
    typer.echo(f"written: {path}")


# the commands of 0.1.0 development builds, kept (hidden) for the scripts in docs/results
app.command("seq-study", hidden=True, help="Old name of `study sensitivity`.")(study_sensitivity_cmd)
app.command("seq-compare", hidden=True, help="Old name of `study splits`.")(study_splits_cmd)


def _print_run(run, json_out: bool) -> None:
    """A finished run as result.json or a one-line summary and a valid/test table."""
    if json_out:
        typer.echo(json.dumps(run.result, indent=2))
        return
    r = run.result
    what = r["model"] if r.get("task") == "sequential" else f"{r['model']} + {r['denoiser']}"
    best = f"best epoch {r['best_epoch'] + 1} of {r['epochs_run']}" if r["best_epoch"] >= 0 else "no training"
    typer.echo(f"{what} on {r['dataset']['name']} (seed {r['seed']}): {best}, "
               f"{r['seconds_per_epoch']:.3f} s/epoch, {r['eval_seconds']:.3f} s/eval")
    typer.echo(metrics_table({"valid": run.valid, "test": run.test}))
    if "detection" in r:
        d = r["detection"]
        typer.echo(f"noise detection (the denoiser's judgement vs the planted noise): ROC-AUC {d['auc']:.3f}, "
                   f"precision@|noise| {d['precision@noise']:.3f} (chance: 0.5 and the noise share)")
    for kind, loc in r.get("localisation", {}).items():
        k_key = next(k for k in loc if k.startswith("item_precision@"))
        typer.echo(f"localisation ({kind}): top modality = planted {loc['modality_hit_rate']:.3f} "
                   f"(chance {loc['modality_chance']:.3f}, majority {loc['modality_majority_rate']:.3f}); "
                   f"{k_key} {loc[k_key]:.3f} (chance {loc['item_chance']:.3f})")
    typer.echo(f"run folder: {run.path}")


#: longest error line printed (a message quoting a huge value is cut, not the terminal flooded)
MAX_ERROR_CHARS = 1000


def error_line(exc: BaseException) -> str:
    """``error: <message>`` on one line of at most MAX_ERROR_CHARS characters."""
    text = describe_os_error(exc) if isinstance(exc, OSError) and not isinstance(exc, MMDenoiseError) else str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    line = f"error: {text}"
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


def main() -> None:
    """Entry point: usage errors and --help are click's; our own errors and the operating system's
    (missing files, full disk, permissions) become one ``error:`` line and exit 2.

    ``--debug`` anywhere on the command line (or ``MMDENOISE_DEBUG=1``) also
    prints the traceback. It is taken out before typer parses the arguments,
    so every command accepts it without declaring it. The global flags
    (``-q``/``--quiet``, ``-v``/``--verbose``) are likewise accepted anywhere:
    moved before the command (``mmdenoise train ... -q`` is ``mmdenoise -q train ...``).
    """
    debug = "--debug" in sys.argv[1:] or os.environ.get("MMDENOISE_DEBUG", "") not in ("", "0")
    args = [a for a in sys.argv[1:] if a != "--debug"]
    sys.argv = [sys.argv[0], *(a for a in args if a in GLOBAL_FLAGS), *(a for a in args if a not in GLOBAL_FLAGS)]
    try:
        app()
    except (MMDenoiseError, OSError) as exc:
        if debug:
            traceback.print_exc()
        typer.echo(error_line(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
