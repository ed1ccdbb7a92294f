"""What would move a claims page's verdicts: the robustness screens the page reports beside its rule.

Pure functions of a claims.json mapping (``cells.page_data``): the deciding p of
every distinct comparison adjusted together (Benjamini–Hochberg), the seeds
screen (a comparison's Δ at each seed alone against its mean), the final runs
that stopped on their starting plateau, and which claim verdicts a screen would
change. ``page`` renders them.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Callable, Mapping

from ...eval.significance import fdr_adjusted
from .cells import claim_verdict

#: a final run whose best validation came in one of its first this many epochs may have stopped on the
#: plateau training starts on (patience ran out before it learnt), not at convergence
EARLY_EPOCHS = 3


def backbone_b(cell: Mapping[str, Any]) -> str:
    """The backbone of a cell's ``versus`` side: its own for ``beats``, ``against`` for ``detects``."""
    return cell.get("against", cell["backbone"])


def cell_key(cell: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    """A comparison's identity (claims can share one): dataset, each side's backbone and method."""
    return cell["dataset"], cell["backbone"], cell["method"], backbone_b(cell), cell["versus"]


def cell_verdicts(claim: Mapping[str, Any], dataset: str) -> list[str]:
    """The verdict of each of ``claim``'s comparisons on ``dataset`` (its status while not done)."""
    return [c.get("verdict", "pending") if c["status"] == "done" else c["status"]
            for c in claim["cells"] if c["dataset"] == dataset]


def distinct_done(data: Mapping[str, Any]) -> dict[tuple, Mapping[str, Any]]:
    """Every distinct comparison with evidence (:func:`cell_key`), in page order."""
    distinct: dict[tuple, Mapping[str, Any]] = {}
    for claim in data["claims"]:
        for cell in claim["cells"]:
            if cell["status"] == "done":
                distinct.setdefault(cell_key(cell), cell)
    return distinct


def fdr_adjusted_p(data: Mapping[str, Any]) -> dict[tuple, float]:
    """The deciding p (the cell's first metric) of every distinct comparison with evidence, adjusted
    together (Benjamini–Hochberg), by :func:`cell_key`."""
    distinct = distinct_done(data)
    keys = list(distinct)
    return dict(zip(keys, fdr_adjusted([distinct[k]["p"][next(iter(distinct[k]["p"]))] for k in keys])))


def fdr_screen(data: Mapping[str, Any]) -> tuple[dict[tuple, float], list[tuple], list[tuple]]:
    """The multiple-comparisons screen: the adjusted p by :func:`cell_key` (:func:`fdr_adjusted_p`), the
    significant comparisons' keys, and those of them whose adjusted p is not below α."""
    adjusted = fdr_adjusted_p(data)
    significant = [k for k, c in distinct_done(data).items() if c["verdict"] != "inconclusive"]
    return adjusted, significant, [k for k in significant if adjusted[k] >= data["alpha"]]


def seed_flagged(data: Mapping[str, Any]) -> tuple[set, dict[tuple, float]]:
    """The seeds screen: the significant comparisons with several replicates (by :func:`cell_key`), and
    those of them whose |Δ| is below twice the standard error of their per-seed Δs, with that error."""
    checked, flagged = set(), {}
    for key, cell in distinct_done(data).items():
        deltas = cell.get("seed_deltas") or []
        if cell["verdict"] == "inconclusive" or len(deltas) < 2:
            continue
        checked.add(key)
        error = statistics.stdev(deltas) / math.sqrt(len(deltas))
        if abs(cell["delta"][next(iter(cell["delta"]))]) < 2 * error:
            flagged[key] = error
    return checked, flagged


def fdr_verdict(data: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], str]:
    """A done cell's verdict with the p-values adjusted together: inconclusive unless its adjusted p < α."""
    alpha, adjusted = data["alpha"], fdr_adjusted_p(data)
    return lambda c: c["verdict"] if adjusted[cell_key(c)] < alpha else "inconclusive"


def seed_verdict(data: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], str]:
    """A done cell's verdict under the seeds screen: inconclusive when :func:`seed_flagged` flags it."""
    flagged = seed_flagged(data)[1]
    return lambda c: "inconclusive" if cell_key(c) in flagged else c["verdict"]


def screened_verdicts(data: Mapping[str, Any]) -> dict[str, Callable[[Mapping[str, Any]], str]]:
    """Each robustness screen, by name, as a done cell's verdict under it."""
    return {"multiple comparisons": fdr_verdict(data), "seeds": seed_verdict(data)}


def screened_claim_verdict(claim: Mapping[str, Any], dataset: str,
                           new_verdict: Callable[[Mapping[str, Any]], str]) -> str:
    """``claim``'s verdict on ``dataset`` when each of its done cells there takes ``new_verdict(cell)``."""
    return claim_verdict([new_verdict(c) if c["status"] == "done" else c["status"]
                          for c in claim["cells"] if c["dataset"] == dataset])


def claims_moved(data: Mapping[str, Any], new_verdict: Callable[[Mapping[str, Any]], str]) -> list[str]:
    """'claim on dataset: before → after' for each claim whose verdict on a dataset changes when every done
    cell takes ``new_verdict(cell)`` instead of its own."""
    moved = []
    for claim in data["claims"]:
        for dataset in dict.fromkeys(c["dataset"] for c in claim["cells"]):
            before = claim_verdict(cell_verdicts(claim, dataset))
            after = screened_claim_verdict(claim, dataset, new_verdict)
            if after != before:
                moved.append(f"{claim['id']} on {dataset}: {before} → {after}")
    return moved


def screens_summary(data: Mapping[str, Any]) -> str:
    """One line of what would move the page's verdicts (its robustness sections, in numbers)."""
    _, significant, changed = fdr_screen(data)
    kept = len(significant) - len(changed)
    checked, flagged = seed_flagged(data)
    stopped = sum(len(seeds) for _, seeds in early_runs(data).values())
    return (f"{kept} of {len(significant)} significant comparisons stay so with every p adjusted together "
            f"(Benjamini–Hochberg); {len(flagged)} of the {len(checked)} with several seeds have |Δ| within twice "
            f"the standard error of their per-seed Δs; {stopped} final run(s) stopped early on a starting plateau")


def early_runs(data: Mapping[str, Any]) -> dict[tuple[str, str, str], tuple[Mapping[str, Any], list]]:
    """The runs (dataset, backbone, method) with a final run whose best validation epoch is below
    :data:`EARLY_EPOCHS`: their claims.json result and [(evidence folder name, best epoch)] of those seeds
    (none when claims.json predates ``best_epochs``)."""
    early = {}
    for r in data.get("results") or []:
        seeds = [(path.rsplit("/", 1)[-1], epoch) for path, epoch in zip(r["evidence"], r.get("best_epochs") or [])
                 if epoch < EARLY_EPOCHS]
        if seeds:
            early[(r["dataset"], r["backbone"], r["method"])] = (r, seeds)
    return early
