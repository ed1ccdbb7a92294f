"""``make demo``: train the available backbones on real ml-100k and print a results table.

    python -m mmdenoise.experiments.demo [--dataset ml-100k] [--models pop,mf,lightgcn,vbpr]
"""
from __future__ import annotations

import argparse

from ..api import train
from ..data import load_dataset

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


if __name__ == "__main__":
    main()
