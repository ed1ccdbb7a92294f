"""``make demo``: train the available backbones on real ml-100k and print a results table, then
the same backbone with and without GUIDER on ml-100k with 10% injected interactions.

    python -m mmdenoise.experiments.demo [--dataset ml-100k] [--models pop,mf,lightgcn,vbpr]
                                         [--student freedom] [--noise 0.1]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..api import train
from ..data import load_dataset
from ..data.noise import inject_noise
from ..eval.significance import compare
from ..training import record

DEFAULT_MODELS = ("pop", "mf", "lightgcn", "vbpr", "freedom")


def results_table(rows: list[dict]) -> str:
    """A Markdown table of test metrics and speed, one row per run result."""
    header = "| model | denoiser | recall@20 | ndcg@20 | recall@50 | ndcg@50 | best epoch | s/epoch |"
    lines = [header, "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = r["test"]
        lines.append(f"| {r['model']} | {r['denoiser']} | {t['recall@20']:.4f} | {t['ndcg@20']:.4f} | "
                     f"{t['recall@50']:.4f} | {t['ndcg@50']:.4f} | {r['best_epoch']} | "
                     f"{r['seconds_per_epoch']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--student", default="freedom", help="backbone for the denoising demo ('' skips it)")
    parser.add_argument("--noise", type=float, default=0.1, help="share of added training interactions")
    args = parser.parse_args(argv)
    dataset = load_dataset(args.dataset)
    print(dataset)
    rows = []
    for model in args.models.split(","):
        run = train(dataset, model=model, seed=args.seed, out=f"{args.out}/{model}")
        rows.append(run.result)
        print(f"{model}: test recall@20 = {run.test['recall@20']:.4f}", flush=True)
    print()
    print(results_table(rows))
    if args.student:
        denoising_demo(dataset, args.student, args.noise, args.seed, f"{args.out}/noise{args.noise:g}")


def denoising_demo(dataset, student: str, noise: float, seed: int, out: str) -> None:
    """``student`` alone and with GUIDER on ``dataset`` plus ``noise`` × |train| injected interactions."""
    noisy = inject_noise(dataset, add=noise, seed=seed)
    print(f"\n{student} with and without GUIDER, {noise:.0%} added training interactions:", flush=True)
    rows, folders = [], []
    for denoiser in ("none", "guider"):
        folder = f"{out}/{student}-{denoiser}"
        run = train(noisy, model=student, denoiser=denoiser, seed=seed, out=folder)
        rows.append(run.result)
        folders.append(folder)
        print(f"{student}+{denoiser}: test recall@20 = {run.test['recall@20']:.4f}", flush=True)
    print()
    print(results_table(rows))
    per_user = [record.read_per_user(Path(f)) for f in folders]
    for metric in ("recall@20", "ndcg@20"):
        c = compare(per_user[1], per_user[0], metric)
        print(f"GUIDER vs none, {metric}: {c.mean_a:.4f} vs {c.mean_b:.4f} over {c.n_users} users, "
              f"paired t-test p = {c.p_ttest:.3g}")


if __name__ == "__main__":
    main()
