"""The datasets page: size, density and how informative each modality is (``mmdenoise data stats``).

Per dataset: users, items, interactions (all splits), density; per modality:
its width, the mean pairwise cosine of distinct items (DA-MRS Table 1;
``data.info.mean_pairwise_cosine``) and overlap@k of its kNN item graph with
the co-interaction graph of the training split, with the lift over random
neighbours (``graphs.agreement``). Output: a Markdown page and its JSON.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..data import load_dataset
from ..data.info import dataset_info
from ..graphs.agreement import item_cooccurrence, modality_agreement
from ..io import write_json, write_text
from .tables import markdown

DEFAULT_K = 10


def dataset_stats(name: str, k: int = DEFAULT_K) -> dict:
    """``dataset_info`` of ``name`` plus, per modality, ``overlap``/``chance``/``lift`` at ``k`` (graphs.agreement)."""
    dataset = load_dataset(name)
    info = dataset_info(dataset)
    train = dataset.train
    graph = item_cooccurrence(train.users, train.items, dataset.n_users, dataset.n_items, k)
    for modality, x in dataset.features.items():
        info["modalities"][modality].update(
            modality_agreement(x, train.users, train.items, dataset.n_users, dataset.n_items, k,
                               interaction_graph=graph))
    info["source"] = name
    info.pop("path")  # where this machine keeps it: not part of the page
    return info


def stats_table(stats: Sequence[dict]) -> str:
    """Markdown: one row per dataset × modality (the dataset's counts on its first row only)."""
    k = next((m["k"] for s in stats for m in s["modalities"].values()), DEFAULT_K)
    header = ["dataset", "users", "items", "interactions", "density", "modality", "dim", "mean cosine",
              f"overlap@{k}", "lift"]
    rows = []
    for s in stats:
        total = s["interactions"]["total"]
        head = [s["source"], f"{s['users']:,}", f"{s['items']:,}", f"{total:,}",
                f"{100 * total / (s['users'] * s['items']):.3f}%"]
        for row, (modality, m) in enumerate((s["modalities"] or {"–": None}).items()):
            values = (["–"] * 4 if m is None else
                      [str(m["dim"]), f"{m['mean_cosine']:.3f}", f"{m['overlap']:.3f}", f"{m['lift']:.1f}×"])
            rows.append((head if row == 0 else [""] * len(head)) + [modality] + values)
    return markdown(header, rows, "lrrrrlrrrr") + "\n"


def write_stats_page(names: Sequence[str], out: str | Path, k: int = DEFAULT_K) -> Path:
    """Compute ``dataset_stats`` for every name and write ``out`` (Markdown) and ``out`` with ``.json``."""
    out = Path(out)
    stats = [dataset_stats(name, k) for name in names]
    text = ("# Datasets\n\n"
            f"Regenerate with `mmdenoise data stats {' '.join(names)} --out {out.as_posix()}`.\n\n"
            "Density = interactions / (users × items). Mean cosine: mean cosine similarity of two distinct "
            "items' feature rows (DA-MRS Table 1; near 1 = every item looks alike). "
            f"Overlap@{k}: for each item, the share of its top-{k} co-interaction neighbours (items most "
            "training users consumed together with it) that are also among its "
            f"{k} nearest items by the modality's cosine, averaged over items; lift = overlap / the "
            f"overlap of random neighbours ({k} / (items − 1)).\n\n" + stats_table(stats))
    write_text(out, text)
    write_json(out.with_suffix(".json"), {"k": k, "datasets": stats})
    return out
