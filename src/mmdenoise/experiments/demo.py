"""``make demo``: the whole idea in under three minutes on 2 cores, as a story a newcomer can follow.

1. real ml-100k (text + genre features), a few backbones on a short training budget;
2. 20% random interactions added to training (the planted noise is known), LightGCN alone vs
   LightGCN + T-CE: test metrics with a paired t-test, and how well T-CE's judgement finds the
   injected interactions (detection ROC-AUC);
3. a PNG of that judgement, then what to run next.

``make demo-full`` (``--full``) trains the five backbones to convergence with their default settings
and FREEDOM with and without GUIDER under 10% added interactions (the README's results; about
25 minutes on 2 cores).

    python -m mmdenoise.experiments.demo [--full] [--dataset ml-100k] [--out runs/demo]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..api import train
from ..data import load_dataset
from ..data.noise import inject_noise
from ..eval.significance import compare
from ..log import configure
from ..training import record
from ..training.trainer import limit_threads
from .tables import markdown

#: the quick demo: backbones and a budget that fits 3 minutes (lr 5e-3 converges in tens of epochs)
QUICK_MODELS = ("pop", "mf", "lightgcn", "freedom")
QUICK_SETTINGS = ("train.lr=0.005", "train.epochs=40", "train.patience=5")
#: T-CE's drop-rate ramp shortened to fit the budget (its 30,000-step default never ramps on ml-100k)
QUICK_DENOISER = ("tce", ("denoiser_params.num_gradual=500",))   # "T-CE" in the story below
FULL_MODELS = ("pop", "mf", "lightgcn", "vbpr", "freedom")


def results_table(rows: list[dict]) -> str:
    """A Markdown table of test metrics and speed, one row per run result (best epoch counted from 1)."""
    metrics = ("recall@20", "ndcg@20", "recall@50", "ndcg@50")
    cells = [[r["model"], r["denoiser"], *(f"{r['test'][m]:.4f}" for m in metrics),
              str(r["best_epoch"] + 1) if r["best_epoch"] >= 0 else "–", f"{r['seconds_per_epoch']:.3f}"]
             for r in rows]
    return markdown(["model", "denoiser", *metrics, "best epoch", "s/epoch"], cells, "llrrrrrr")


def say(text: str = "") -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the complete tables (about 25 minutes on 2 cores)")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run folders (default runs/demo, runs/demo-full)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch and BLAS threads for every run (default 0: torch's choice, one per core)")
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    configure(-1 if args.quiet else 0)
    limit_threads(args.threads)
    start = time.perf_counter()
    out = Path(args.out or ("runs/demo-full" if args.full else "runs/demo"))
    if args.full:
        full_demo(args.dataset, args.seed, out)
    else:
        quick_demo(args.dataset, args.seed, out)
    say(f"\n(demo finished in {time.perf_counter() - start:.0f} s)")


def backbones_demo(dataset, models, seed: int, out: Path, overrides=()) -> list[dict]:
    """Train each backbone in ``models`` (into ``out/<model>``), say its test recall@20, then their
    table; returns their result rows."""
    rows = []
    for model in models:
        run = train(dataset, model=model, seed=seed, out=out / model, overrides=overrides)
        rows.append(run.result)
        say(f"{model}: test recall@20 = {run.test['recall@20']:.4f}")
    say()
    say(results_table(rows))
    return rows


def quick_demo(dataset_name: str, seed: int, out: Path) -> None:
    say(f"== 1. Data: {dataset_name}")
    dataset = load_dataset(dataset_name)
    say(str(dataset))
    say(f"\n== 2. Backbones on {dataset.name} ({', '.join(QUICK_SETTINGS)}: a short budget; "
        "`make demo-full` trains to convergence)")
    rows = backbones_demo(dataset, QUICK_MODELS, seed, out, QUICK_SETTINGS)
    say("pop ranks by popularity; the others learn from the interactions (FREEDOM also from the text and genre "
        "features).")

    denoiser, extra = QUICK_DENOISER
    noise = 0.2
    say(f"\n== 3. Denoising: {noise:.0%} random interactions added to training (which ones is recorded), "
        f"LightGCN alone vs LightGCN + T-CE")
    noisy = inject_noise(dataset, add=noise, seed=seed)
    folders = {}
    for name in ("none", denoiser):
        folder = out / f"add{noise * 100:g}" / f"lightgcn-{name}"
        run = train(noisy, model="lightgcn", denoiser=name, seed=seed, out=folder,
                    overrides=[*QUICK_SETTINGS, *(extra if name != "none" else ())])
        folders[name] = folder
        rows.append(run.result)
        say(f"lightgcn + {name}: test recall@20 = {run.test['recall@20']:.4f}")
    say()
    say(results_table(rows[-2:]))
    a, b = record.read_per_user(folders[denoiser]), record.read_per_user(folders["none"])
    for metric in ("recall@20", "ndcg@20"):
        c = compare(a, b, metric)
        verdict = "significant" if c.p_ttest < 0.05 else "not significant"
        say(f"{denoiser} vs none, test {metric}: {c.mean_a:.4f} vs {c.mean_b:.4f} over {c.n_users} users, "
            f"paired t-test p = {c.p_ttest:.3g} ({verdict} at 0.05)")
    detection = record.read_result(folders[denoiser]).get("detection")
    if detection is not None:
        say(f"{denoiser}'s judgement finds the injected interactions with ROC-AUC {detection['auc']:.3f} "
            f"(0.5 = chance) and precision@|noise| {detection['precision@noise']:.3f} "
            f"(chance: {noise / (1 + noise):.3f})")

    from .plots import score_distributions
    png = score_distributions([folders[denoiser]], out / "scores.png")
    say(f"\n== 4. Figure: {png} (clean vs injected interactions by {denoiser}'s score)")

    first = out / "lightgcn"
    say("\n== What next (after `. .venv/bin/activate`)")
    for command, why in [
            (f"mmdenoise recommend {first} --users 1,2,3 -k 10", "top-10 movies for users 1, 2 and 3"),
            (f"mmdenoise evaluate {first}", "rebuild the saved model and score it again"),
            ("mmdenoise list models", "every model (also: list denoisers, list datasets)"),
            ("mmdenoise list tce", "one denoiser's settings, defaults and paper symbols (any model too)"),
            (f"mmdenoise compare {folders[denoiser]} {folders['none']}",
             "the paired comparison above, with its 95% interval (any two runs on the same data)"),
            ("mmdenoise train -d ml-100k -m freedom --denoiser guider", "one full run (minutes)"),
            ("mmdenoise study noise -d ml-100k -m lightgcn --denoisers none,tce --levels 0,0.2 --seeds 3",
             "the robustness study"),
            ("make demo-full", "the README's complete tables (about 25 minutes)")]:
        say(f"  {command}\n      {why}")


def full_demo(dataset_name: str, seed: int, out: Path) -> None:
    """The README's results: every backbone to convergence, then FREEDOM with and without GUIDER."""
    dataset = load_dataset(dataset_name)
    say(str(dataset))
    backbones_demo(dataset, FULL_MODELS, seed, out)
    denoising_demo(dataset, "freedom", 0.1, seed, out / "noise0.1")


def denoising_demo(dataset, student: str, noise: float, seed: int, out: Path) -> None:
    """``student`` alone and with GUIDER on ``dataset`` plus ``noise`` × |train| injected interactions."""
    noisy = inject_noise(dataset, add=noise, seed=seed)
    say(f"\n{student} with and without GUIDER, {noise:.0%} added training interactions:")
    rows, folders = [], []
    for denoiser in ("none", "guider"):
        folder = out / f"{student}-{denoiser}"
        run = train(noisy, model=student, denoiser=denoiser, seed=seed, out=folder)
        rows.append(run.result)
        folders.append(folder)
        say(f"{student}+{denoiser}: test recall@20 = {run.test['recall@20']:.4f}")
    say()
    say(results_table(rows))
    per_user = [record.read_per_user(f) for f in folders]
    for metric in ("recall@20", "ndcg@20"):
        c = compare(per_user[1], per_user[0], metric)
        say(f"GUIDER vs none, {metric}: {c.mean_a:.4f} vs {c.mean_b:.4f} over {c.n_users} users, "
            f"paired t-test p = {c.p_ttest:.3g}")


if __name__ == "__main__":
    main()
