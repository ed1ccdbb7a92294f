"""The claims page: rendering claims.json as Markdown, writing both, and :func:`check_claims`, which
recomputes every number from the committed evidence."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ...data.registry import is_synthetic
from ...errors import MMDenoiseError
from ...eval.significance import p_text
from ..runner import param_text
from ..tables import markdown
from .spec import CHANCE, KIND_METRICS, METRICS, SEQUENTIAL, SPLIT_KEY, replicates_of
from .runs import EVIDENCE_DIR, SELECTION_JSON, _complete
from .cells import (ALONE, CUT, PRIMARY, SHORT, VERDICTS, _evidence_names, best_epochs, claim_verdict,
                    comparison_numbers, run_means, seed_spread, verdict)
from .screens import (EARLY_EPOCHS, backbone_b, cell_verdicts, claims_moved, distinct_done, early_runs,
                      fdr_screen, fdr_verdict, screened_claim_verdict, screened_verdicts, seed_flagged,
                      seed_verdict)

CLAIMS_JSON = "claims.json"
#: relative tolerance of the check on p and Δ (the numbers are recomputed, so they agree to rounding)
CHECK_TOLERANCE = 1e-9


def _cell_text(cell: Mapping[str, Any]) -> str:
    """A done cell as its claim's table shows it: each Δ with its p, the deciding (first) one with its 95%
    confidence interval, then the verdict."""
    if cell["status"] != "done":
        return cell["status"]
    d, p, first = cell["delta"], cell["p"], next(iter(cell["delta"]))
    low, high = cell["ci"][first]
    return ", ".join(f"Δ{SHORT[m]} {d[m]:+.4f}" + (f" [{low:+.4f}, {high:+.4f}]" if m == first else "")
                     + f" (p {p_text(p[m])})" for m in d) + f": {cell['verdict']}"


def _comparison_text(cell: Mapping[str, Any]) -> str:
    if "against" in cell:
        return f"{cell['method']} on {cell['backbone']} vs on {cell['against']}"
    return f"{cell['method']} vs {cell['versus']} on {cell['backbone']}"


def _noise_text(noise: Mapping[str, Any] | None) -> str:
    if not noise:
        return "as built"
    what = f"{noise['kind']} {noise['modality']}" if noise.get("modality") else noise["kind"]
    return f"{what} {100 * noise['level']:g}% (noise seed {noise['seed']})"


def _params_text(params: Mapping[str, Any] | None) -> str:
    if params is None:
        return "pending"
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={param_text(v)}" for k, v in params.items()) or "defaults"


def _grid_text(method: Mapping[str, Any]) -> str:
    """A method's grid as the page shows it; for one run at another's selection, that and its fixed settings."""
    fixed = ", ".join(f"`{k}={param_text(v)}`" for k, v in method.get("set") or [])
    if method.get("selection_of"):
        return f"{method['selection_of']}'s selection" + (f", with {fixed}" if fixed else "")
    grid = "; ".join(f"{k} ∈ {param_text(v)}" for k, v in method["grid"].items()) or "none"
    return grid + (f" (fixed: {fixed})" if fixed else "")


def _cut_text(cut: Sequence[Sequence[str]] | None, methods: Sequence[Mapping[str, Any]]) -> str:
    """``lightgcn: every method; vbpr: none, rce`` for a dataset's cut pairs (``–`` without); methods:
    the ``methods`` entries of claims.json, which say what "every method" of a backbone is."""
    by_backbone: dict[str, list[str]] = {}
    for backbone, method in cut or []:
        by_backbone.setdefault(backbone, []).append(method)
    every = lambda x: {m["name"] for m in methods if bool(m.get("model")) == (x == SEQUENTIAL)}  # noqa: E731
    return "; ".join(f"{x}: {'every method' if set(ms) == every(x) else ', '.join(ms)}"
                     for x, ms in by_backbone.items()) or "–"


def dataset_seeds(data: Mapping[str, Any], dataset: Mapping[str, Any]) -> list[int]:
    """The final seeds of a ``datasets`` entry of claims.json (the protocol's where it gives none)."""
    return list(dataset.get("seeds") or data["protocol"]["seeds"])


def data_replicates(data: Mapping[str, Any], dataset: Mapping[str, Any] | None, backbone: str
                    ) -> list[tuple[int | None, int]]:
    """:meth:`ClaimsSpec.replicates` from claims.json: (user split, seed) of a (dataset entry, backbone);
    none for a dataset the page does not list."""
    if dataset is None:
        return []
    return replicates_of(dataset.get("splits") if backbone == SEQUENTIAL else None, dataset_seeds(data, dataset))


def cell_label(claim: Mapping[str, Any], cell: Mapping[str, Any]) -> str:
    """A cell as errors name it: ``claim-id: A vs B on BACKBONE, DATASET`` (``detects``: ``claim-id: A on
    BACKBONE vs on OTHER, DATASET``)."""
    return f"{claim['id']}: {_comparison_text(cell)}, {cell['dataset']}"


#: how the README's summary counts a claim's comparisons on a dataset
SUMMARY_WORDS = {"confirmed": "hold", "refuted": "fail", "inconclusive": "tie", "pending": "to run"}


#: the summary's mark on a claim verdict that a robustness screen (:func:`screened_verdicts`) would change
SCREEN_MARKS = {"multiple comparisons": "†", "seeds": "‡"}


def summary_table(data: Mapping[str, Any], page: str) -> str:
    """Each claim's verdict on each source dataset of a claims.json mapping, as the README opens with it: a
    column per real source (the claim's dataset built from it, whatever noise it plants) and one for the
    synthetic presets; each claim links its section of ``page`` (the page's path as the reader sees it). A
    verdict that a robustness screen would change carries that screen's mark (:data:`SCREEN_MARKS`),
    explained in a line under the table."""
    screens = screened_verdicts(data) if distinct_done(data) else {}
    synthetic = {d["name"] for d in data["datasets"] if is_synthetic(d["source"])}
    real = list(dict.fromkeys(d["source"] for d in data["datasets"] if d["name"] not in synthetic))
    columns = [[d["name"] for d in data["datasets"] if d["source"] == source] for source in real]
    columns.append([d["name"] for d in data["datasets"] if d["name"] in synthetic])

    used = set()

    def shown(claim: Mapping[str, Any], dataset: str) -> str:
        verdicts = cell_verdicts(claim, dataset)
        counted = [v for v in verdicts if v != CUT]
        before = claim_verdict(verdicts)
        marks = "".join(mark for screen, mark in SCREEN_MARKS.items()
                        if screen in screens and screened_claim_verdict(claim, dataset, screens[screen]) != before)
        used.update(marks)
        if len(counted) <= 1:
            return before + marks
        counts = ", ".join(f"{counted.count(v)} {word}" for v, word in SUMMARY_WORDS.items() if v in counted)
        return f"{before}{marks} ({counts})"

    rows = []
    for claim in data["claims"]:
        row = [f"[{claim['claim']}]({page}#{claim['id']})"]
        for names in columns:
            row.append(" / ".join(shown(claim, n) for n in names if cell_verdicts(claim, n)) or "–")
        rows.append(row)
    legend = {"†": "† the verdict changes when every p-value is adjusted for the number of comparisons",
              "‡": "‡ it changes when the comparisons within their seed-to-seed variation count as ties"}
    notes = [legend[m] for m in SCREEN_MARKS.values() if m in used]
    return markdown(["claim", *real, "synthetic"], rows, "l" * (len(columns) + 1)) + (
        "\n\n" + "; ".join(notes) + " (the page's robustness sections)." if notes else "")


def multiplicity_lines(data: Mapping[str, Any]) -> list[str]:
    """The page's "Multiple comparisons" section: the verdicts again with the p-values of every distinct
    comparison with evidence adjusted together (Benjamini–Hochberg, false-discovery rate = the rule's α),
    and which cells and claims that would change. Nothing when no comparison has evidence."""
    alpha = data["alpha"]
    distinct = distinct_done(data)
    if not distinct:
        return []
    keys = list(distinct)
    deciding = [next(iter(distinct[k]["p"])) for k in keys]  # the verdict's metric: the cell's first
    adjusted, significant, changed = fdr_screen(data)
    chance = alpha * len(keys)
    lines = ["## Multiple comparisons", "",
             f"The rule tests each comparison on its own. Of the {len(keys)} distinct comparisons with evidence, "
             f"{len(significant)} are significant at p < {alpha}; if no method differed from another, about "
             f"{chance:.{0 if chance >= 1 else 1}f} would be by chance. With their p-values adjusted together "
             f"(Benjamini–Hochberg, false-discovery rate {alpha}), {len(significant) - len(changed)} stay significant"
             + (": every verdict stands." if not changed else
                "; this one becomes inconclusive:" if len(changed) == 1 else
                f"; these {len(changed)} become inconclusive:"), ""]
    if changed:
        lines += [markdown(["comparison", "dataset", "Δ", "p", "adjusted p", "verdict"],
                           [[_comparison_text(distinct[k]), k[0],
                             f"{distinct[k]['delta'][m]:+.4f}", p_text(distinct[k]["p"][m]), p_text(adjusted[k]),
                             distinct[k]["verdict"]]
                            for k, m in zip(keys, deciding) if k in changed], "llrrrl"), ""]
        lines += [claims_moved_text(data, fdr_verdict(data)), ""]
    return lines


def claims_moved_text(data: Mapping[str, Any], new_verdict: Callable[[Mapping[str, Any]], str]) -> str:
    """The sentence naming each claim whose verdict on a dataset would change (:func:`screens.claims_moved`)."""
    moved = claims_moved(data, new_verdict)
    return "Claims whose verdict on a dataset would change: " + ("; ".join(moved) if moved else "none") + "."


def seed_lines(data: Mapping[str, Any]) -> list[str]:
    """The page's "Seeds" section: the paired test over users holds the trained models fixed, so a
    significant Δ can still be seed luck. A cell with several replicates has a Δ at each alone
    (``seed_deltas``: the same seed on both sides); the standard error of their mean, sd / √R, is Δ's
    seed-to-seed uncertainty, and the significant cells whose |Δ| is below twice it are listed, with the
    claims they would change if they were ties. Nothing when no significant cell has several replicates."""
    checked, errors = seed_flagged(data)
    distinct = distinct_done(data)
    flagged = {key: (distinct[key], error) for key, error in errors.items()}
    if not checked:
        return []
    single = [d["name"] for d in data["datasets"] if len(dataset_seeds(data, d)) == 1]
    lines = ["## Seeds", "",
             "The paired test over users holds the trained models fixed; training with other seeds moves each "
             "run (± in the test-metrics table: the spread of its per-seed means). A cell run at R seeds (× user "
             "splits) has a Δ at each alone, A and B at the same seed; the standard error of their mean, "
             "sd / √R, is Δ's uncertainty from the seeds."
             + (f" Datasets run with one seed ({', '.join(single)}) have none: their verdicts rest on the "
                "paired test alone." if single else "")
             + f" Of the {len(checked)} significant cells with several seeds, "
             + (f"{len(flagged)} {'has' if len(flagged) == 1 else 'have'} |Δ| below twice that error, so their "
                "sign may rest on the seeds drawn:" if flagged else "none has |Δ| below twice that error."), ""]
    if flagged:
        def agreeing(cell: Mapping[str, Any]) -> str:
            sign = math.copysign(1.0, cell["delta"][next(iter(cell["delta"]))])
            return f"{sum(x * sign > 0 for x in cell['seed_deltas'])} of {len(cell['seed_deltas'])}"

        lines += [markdown(["comparison", "dataset", "Δ", "p", "Δ at each seed", "seeds with Δ's sign",
                            "its standard error", "verdict"],
                           [[_comparison_text(cell), cell["dataset"],
                             f"{cell['delta'][next(iter(cell['delta']))]:+.4f}",
                             p_text(cell["p"][next(iter(cell["p"]))]),
                             ", ".join(f"{x:+.4f}" for x in cell["seed_deltas"]), agreeing(cell), f"{error:.4f}",
                             cell["verdict"]]
                            for cell, error in flagged.values()], "llrrlrrl"), "",
                  claims_moved_text(data, seed_verdict(data)), ""]
    return lines


def early_stop_lines(data: Mapping[str, Any]) -> list[str]:
    """The page's "Early stops" section: the final runs (evidence folders) whose best validation epoch is
    below :data:`EARLY_EPOCHS`, with their test means, and the cells that compare them. Nothing when no
    run stopped so early (or claims.json predates ``best_epochs``)."""
    early = early_runs(data)
    if not early:
        return []
    runs = sum(len(r.get("best_epochs") or []) for r in data["results"])
    cells = []
    for claim in data["claims"]:
        for c in claim["cells"]:
            sides = [(c["dataset"], c["backbone"], c["method"]), (c["dataset"], backbone_b(c), c["versus"])]
            if c["status"] == "done" and any(side in early for side in sides):
                cells.append(f"{claim['id']}: {_comparison_text(c)}, {c['dataset']} ({c['verdict']})")
    return ["## Early stops", "",
            f"{sum(len(s) for _, s in early.values())} of the {runs} final runs behind the page reached their best "
            f"validation {SHORT[PRIMARY]} in one of their first {EARLY_EPOCHS} epochs and then ran out of "
            "patience: they may have stopped on the plateau training starts on rather than converged, and the "
            "cells that compare them test that stop as much as the method.", "",
            markdown(["dataset", "backbone", "method", "early seeds (best epoch)", f"test {SHORT[PRIMARY]} (mean)"],
                     [[d, x, m, ", ".join(f"{name} ({epoch})" for name, epoch in seeds),
                       f"{r['mean'][PRIMARY]:.4f}"] for (d, x, m), (r, seeds) in early.items()], "llllr"), "",
            "Cells that use them: " + "; ".join(cells) + "." if cells else "No cell uses them.", ""]


def render_page(data: Mapping[str, Any]) -> str:
    """The Markdown page of a claims.json mapping (a pure function of it: the check re-renders it)."""
    datasets = [d["name"] for d in data["datasets"]]
    folder, proto = data["folder"], data["protocol"]
    transferred = [d for d in data["datasets"] if d.get("tune_from")]
    ablations = [m for m in data["methods"] if m.get("selection_of")]
    own_seeds = any(dataset_seeds(data, d) != list(proto["seeds"]) for d in data["datasets"])
    split = [d for d in data["datasets"] if d.get("splits")]
    cuts = [d for d in data["datasets"] if d.get("cut")]
    whys = [d for d in data["datasets"] if d.get("why")]
    sequential = [m for m in data["methods"] if m.get("model")]
    lines = [f"# {data['title']}", "",
             f"Generated by `{data['command']}` from the evidence files in [`{folder}/`]({folder}/); do not edit "
             f"by hand. `{data['check']}` recomputes every Δ and p on this page from those files alone.", "",
             "## Verdicts", "",
             "Each claim on each dataset (the rule is below; the comparisons behind each are in its section).", ""]
    rows = []
    for claim in data["claims"]:
        row = [f"[{claim['id']}](#{claim['id']})"]
        for dataset in datasets:
            verdicts = cell_verdicts(claim, dataset)
            counts = ", ".join(f"{verdicts.count(v)} {v}" for v in (*VERDICTS, "pending", CUT) if verdicts.count(v))
            row.append(f"{claim_verdict(verdicts)} ({counts})" if verdicts else "–")
        rows.append(row)
    lines += [markdown(["claim", *datasets], rows, "l" * (1 + len(datasets))), "",
              "## Rule", "", data["rule"], "",
              *multiplicity_lines(data),
              *seed_lines(data),
              *early_stop_lines(data),
              "## Protocol", "",
              f"- Every (dataset, backbone, method) is tuned on validation {SHORT[PRIMARY]} alone with the same "
              f"budget: min({proto['budget']}, the size of the method's grid) trials, the grid being the one the "
              f"method's paper tunes (see the spec's comments). A grid larger than the budget contributes the same "
              f"{proto['budget']} points (drawn with search seed {proto['search_seed']}) on every backbone and "
              "dataset. Test metrics never select anything."
              + (" A dataset *tuned on* another (the table below) is the exception: it runs no tuning trial, and "
                 "each (backbone, method) there runs the configuration selected on that dataset for the same "
                 "(backbone, method) (the same denoiser settings, with this dataset's fixed settings), so every "
                 "method still has the same tuning budget, spent on the other dataset." if transferred else "")
              + (" A method run *as* another (an ablation: the methods table names which) has no tuning of its "
                 "own either: it runs the configuration selected for that method on the same backbone and "
                 "dataset, with its own denoiser or fixed settings, so a component is removed from the tuned full "
                 "method, as the papers' ablation tables do." if ablations else ""),
              f"- Tuning trials train with seed {proto['tune_seed']}; the selected configuration then runs with "
              + (f"the seeds of its dataset (the table below; {', '.join(map(str, proto['seeds']))} unless the "
                 "dataset gives its own)" if own_seeds else f"seeds {', '.join(map(str, proto['seeds']))}")
              + ", and only those runs are tested here.",
              "- Backbone settings (model parameters, learning rate, batch size) stay at their defaults for every "
              "method; only the denoiser's own settings are tuned."
              + (f" A sequential model (backbone `{SEQUENTIAL}`) is a method itself: its own settings are the grid "
                 "(its fixed settings, shared by the sequential methods, in the methods table)." if sequential else ""),
              *([f"- Sequential models run on user splits (`{SPLIT_KEY}`, the datasets table): each split holds "
                 "out its own validation and test users; tuning uses the default split, and the selected "
                 "configuration runs at every seed on every split."] if split else []),
              *(["- Where a dataset's runs would not fit the budget, its spec entry cuts (backbone, method) pairs "
                 "(the datasets table" + ("; why, under it" if whys else "") + "): they are not run there, the "
                 f"cells that need them say `{CUT}`, and a claim's verdict on that dataset rests on its other "
                 "cells."] if cuts else []),
              "- Fixed settings for every run: "
              + (", ".join(f"`{k}={param_text(v)}`" for k, v in proto["set"]) or "none") + ".",
              "- A cell pairs two methods on one backbone and dataset over the test users every run evaluated: "
              "each user's metric is averaged over the seeds, Δ is the mean over users of A − B, p the two-sided "
              "paired t-test over users. Its evidence is "
              f"`{folder}/{EVIDENCE_DIR}/<dataset>/<backbone>/<method>/s<seed>/` for both methods"
              + (", `split<k>-s<seed>/` on user split k" if split else "") + " (per-user "
              f"test metrics, the resolved config, a small result; each cell's list is in `{folder}/{CLAIMS_JSON}`).",
              "",
              markdown(["dataset", "source", "planted noise", "tuning", "seeds", "its own settings",
                        *(["not run (cut)"] if cuts else [])],
                       [[d["name"], d["source"], _noise_text(d["noise"]),
                         f"tuned on {d['tune_from']}" if d.get("tune_from") else f"budget {proto['budget']}",
                         ", ".join(map(str, dataset_seeds(data, d)))
                         + (f" on user split{'s' if len(d['splits']) > 1 else ''} "
                            f"{', '.join(map(str, d['splits']))}" if d.get("splits") else ""),
                         ", ".join(f"`{k}={v}`" for k, v in d.get("set", [])) or "–",
                         *([_cut_text(d.get("cut"), data["methods"])] if cuts else [])] for d in data["datasets"]],
                       "llllll" + ("l" if cuts else "")), "",
              *([*(f"- **{d['name']}**: {d['why']}" for d in whys), ""] if whys else []),
              markdown(["method", "denoiser", "grid", "grid size", "trials"],
                       [[m["name"], f"{m['model']} (sequential model)" if m.get("model") else m["denoiser"],
                         _grid_text(m),
                         "–" if m.get("selection_of") else str(m["grid_size"]), str(m["trials"])]
                        for m in data["methods"]], "lllrr"), "",
              "## Tuning budget", "",
              "Trials run / trials planned per (backbone, method) on each dataset (*from* another: none of its "
              "own, that dataset's selection is used); a cell's comparison uses a method only once its tuning "
              "is complete.", ""]
    by_key = {(t["dataset"], t["backbone"], t["method"]): t for t in data["tuning"]}
    runs = set(by_key)

    def per_dataset(show: Callable[[Mapping[str, Any]], str], align: str) -> list[str]:
        """One table per group of :func:`_table_groups`: a row per (backbone, method), a column per dataset."""
        return [markdown(["backbone", "method", *shown],
                         [[x, m, *(show(by_key[(d, x, m)]) if (d, x, m) in by_key else "–" for d in shown)]
                          for x, m in pairs], "ll" + align * len(shown)) + "\n" for pairs, shown in _table_groups(data)]
    def source(t: Mapping[str, Any]) -> str:
        """Where a run's selection comes from, when not from its own sweep: 'as M', 'from D' or both."""
        return ", ".join(([f"as {t['selection_of']}"] if t.get("selection_of") else [])
                         + ([f"from {t['tuned_on']}"] if t.get("tuned_on") else []))

    lines += per_dataset(lambda t: source(t) or f"{t['used']}/{t['planned']}", "r")
    for claim in data["claims"]:
        methods = ", ".join(claim["method"])
        compared = (f"{methods} on {', '.join(claim['backbones'])} vs on {', '.join(claim['against'])}"
                    if "against" in claim else
                    f"{methods} vs {', '.join(claim['versus'])} on {', '.join(claim['backbones'])}")
        lines += [f"## {claim['id']}", "", f"**Claim**: {claim['claim']} ({claim['source']}). Kind "
                  f"`{claim['kind']}`: {compared}.", ""]
        rows = []
        for label in dict.fromkeys(_comparison_text(c) for c in claim["cells"]):
            cells = {c["dataset"]: c for c in claim["cells"] if _comparison_text(c) == label}
            rows.append([label, *(_cell_text(cells[d]) if d in cells else "–" for d in claim["datasets"])])
        lines += [markdown(["comparison", *claim["datasets"]], rows, "l" * (1 + len(claim["datasets"]))), ""]
    if data.get("results") is not None:
        lines += ["## Test metrics", "",
                  f"Test {SHORT[PRIMARY]} ({SHORT['ndcg@20']}) of every run with evidence at all its seeds: each "
                  "user's value averaged over the seeds (and user splits), then over users; the best "
                  f"{SHORT[PRIMARY]} of each backbone on each dataset in bold; ± the spread over seeds (the "
                  "standard deviation of the per-seed means, within each user split) where a dataset has several. "
                  "Which differences are significant is in the claims' sections above.", ""]
        results = {(r["dataset"], r["backbone"], r["method"]): r["mean"] for r in data["results"]}
        spreads = {(r["dataset"], r["backbone"], r["method"]): r.get("seed_sd") for r in data["results"]}
        best = {}
        for (d, x, _), mean in results.items():
            best[(d, x)] = max(best.get((d, x), -math.inf), mean[PRIMARY])

        def result_text(d: str, x: str, m: str) -> str:
            if (d, x, m) not in results:
                return "pending"
            mean = results[(d, x, m)]
            text = f"{mean[PRIMARY]:.4f}"
            spread = spreads[(d, x, m)]
            return ((f"**{text}**" if mean[PRIMARY] == best[(d, x)] else text)
                    + (f" ±{spread:.4f}" if spread is not None else "") + f" ({mean['ndcg@20']:.4f})")
        for pairs, shown in _table_groups(data):
            lines += [markdown(["backbone", "method", *shown],
                               [[x, m, *(result_text(d, x, m) if (d, x, m) in runs else "–" for d in shown)]
                                for x, m in pairs], "ll" + "r" * len(shown)), ""]
    if data.get("against_alone") is not None:
        lines += alone_lines(data, runs)
    if data.get("compute"):
        lines += ["## Compute spent", "",
                  "Hours of the runs behind the evidence so far (training and validation, summed over each run's "
                  "epochs, so a run resumed across sessions counts every part): wall clock of one thread on the "
                  "machine that ran it, often shared with other runs, so an upper bound on its CPU time; for a "
                  "run on a GPU (counted in brackets), wall clock on a GPU shared with the runs beside it. The "
                  "budget the benchmark is sized to is 6 hours of a 2-core machine (12 core-hours) per dataset.", "",
                  markdown(["dataset", "tuning runs", "tuning hours", "final runs", "final hours", "total hours"],
                           [[c["dataset"], str(c["tuning_runs"]), f"{c['tuning_hours']:.1f}",
                             str(c["final_runs"]) + (f" ({c['final_runs_on_gpu']} on a GPU)"
                                                     if c.get("final_runs_on_gpu") else ""),
                             f"{c['final_hours']:.1f}", f"{c['tuning_hours'] + c['final_hours']:.1f}"
                             + (f" ({c['unmeasured']} runs unmeasured)" if c.get("unmeasured") else "")]
                            for c in data["compute"]], "lrrrrr"), ""]
    lines += ["## Selected configurations", "",
              f"The trial with the best validation {SHORT[PRIMARY]} (its value in brackets, or the dataset it was "
              f"selected on); every tried trial is listed in "
              f"`{folder}/{EVIDENCE_DIR}/<dataset>/<backbone>/<method>/{SELECTION_JSON}`.", "",
              *per_dataset(lambda t: _params_text(t["selected"]) if t["selected"] is None
                           else f"{_params_text(t['selected'])} ({source(t)})"
                           if source(t) else f"{_params_text(t['selected'])} ({t['valid']:.4f})", "l"),
              "## Reproduce", "",
              f"- `{data['command']}` (add `--workers N`, `--datasets a,b` or `--stage tune|final|page`): "
              "every stage skips finished runs and resumes interrupted ones; `--stage page` trains nothing.",
              f"- `{data['check']}`: recomputes every Δ and p from the evidence and fails naming the cell that "
              "differs.", ""]
    return "\n".join(lines)


#: how the table of lifts marks a comparison's verdict
ALONE_MARKS = {"confirmed": "▲", "inconclusive": "·", "refuted": "▼"}
ALONE_WORDS = {"confirmed": "above", "inconclusive": "tie", "refuted": "below"}


def alone_lines(data: Mapping[str, Any], runs: set[tuple[str, str, str]]) -> list[str]:
    """The page's section of lifts: each method's Δ over its backbone alone (``against_alone``) per dataset,
    a table per group of :func:`_table_groups` whose backbones run alone somewhere; ``runs``: every
    (dataset, backbone, method) of the spec, so that a comparison still without evidence says pending."""
    cells = {(c["dataset"], c["backbone"], c["method"]): c for c in data["against_alone"]}

    def text(d: str, x: str, m: str) -> str:
        if (d, x, m) in cells:
            cell = cells[(d, x, m)]
            return f"{cell['delta'][PRIMARY]:+.4f} {ALONE_MARKS[cell['verdict']]} (p {p_text(cell['p'][PRIMARY])})"
        return "pending" if (d, x, m) in runs and (d, x, ALONE) in runs else "–"
    tables = []
    for pairs, shown in _table_groups(data):
        shown = [d for d in shown if any((d, x, ALONE) in runs for x, _ in pairs)]
        pairs = [(x, m) for x, m in pairs if m != ALONE and any((d, x, ALONE) in runs for d in shown)]
        if pairs:
            tables += [markdown(["backbone", "method", *shown], [[x, m, *(text(d, x, m) for d in shown)]
                                                                 for x, m in pairs], "ll" + "r" * len(shown)), ""]
    if not tables:
        return []
    tally: dict[str, list[str]] = {}
    for cell in data["against_alone"]:
        tally.setdefault(cell["method"], []).append(cell["verdict"])
    counts = [[m, *(str(verdicts.count(v)) for v in ALONE_MARKS)] for m, verdicts in tally.items()]
    return ["## Against the backbone alone", "",
            f"Each method's Δ{SHORT[PRIMARY]} over the same backbone alone (`{ALONE}`) on the same dataset, paired "
            f"over the test users as a cell is, with its p: ▲ above it and ▼ below it by the rule, · a tie. These "
            "are not claims (where a claim makes the same comparison, its cell has the same numbers): they say "
            "which method lifts which backbone, and they stay out of the multiple-comparisons section. `"
            f"{data['check']}` recomputes them too.", "", *tables,
            *(["Each method's comparisons above, counted over its backbones and datasets:", "",
               markdown(["method", *(f"{ALONE_WORDS[v]} ({mark})" for v, mark in ALONE_MARKS.items())], counts,
                        "lrrr"), ""] if counts else [])]


def _table_groups(data: Mapping[str, Any]) -> list[tuple[list[tuple[str, str]], list[str]]]:
    """The rows (backbone, method) of the page's per-run tables, the general backbones' and the sequential
    models' apart, each group with the datasets its runs are on (in the spec's order)."""
    groups = []
    for sequential in (False, True):
        entries = [t for t in data["tuning"] if (t["backbone"] == SEQUENTIAL) == sequential]
        if entries:
            names = {t["dataset"] for t in entries}
            groups.append((list(dict.fromkeys((t["backbone"], t["method"]) for t in entries)),
                           [d["name"] for d in data["datasets"] if d["name"] in names]))
    return groups


def page_path(out: Path) -> Path:
    """The page of the claims folder ``out``: ``<out>.md`` beside it."""
    out = Path(out)
    return out.parent / f"{out.name}.md"


def write_page(data: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``out/claims.json`` and the page rendered from it (each file atomically); return both paths."""
    from ...io import write_json, write_text
    out = Path(out)
    write_json(out / CLAIMS_JSON, data)
    write_text(page_path(out), render_page(data))
    return out / CLAIMS_JSON, page_path(out)


def read_claims(out: str | Path) -> dict[str, Any]:
    """The mapping in ``out/claims.json``; an MMDenoiseError naming it when it is missing or not JSON."""
    out = Path(out)
    path = out / CLAIMS_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MMDenoiseError(f"{path}: not found; is {out} a claims folder?") from None
    except ValueError as exc:
        raise MMDenoiseError(f"{path}: not valid JSON ({str(exc)[:80]})") from None


# ------------------------------------------------------------------- check
def _close(a: float, b: float) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return math.isclose(a, b, rel_tol=CHECK_TOLERANCE, abs_tol=1e-300)


def check_claims(out: str | Path) -> int:
    """Recompute every Δ and p of ``out/claims.json`` from the evidence files it names (no run folder is
    read) and re-render the page; return the number of claim cells checked (the comparisons against the
    backbone alone, ``against_alone``, are checked too, and none with evidence may be left out). An
    MMDenoiseError names the first cell that differs, whose evidence is not one folder per seed of its
    dataset (its own seeds, else the protocol's), or an evidence path that is not relative to ``out``, or a
    page that is not the rendering of claims.json."""
    out = Path(out)
    path = out / CLAIMS_JSON
    data = read_claims(out)
    entries = {d["name"]: d for d in data["datasets"]}
    memo: dict = {}  # a comparison shown twice (two claims, or a claim and the lifts) is computed once

    def check(cell: Mapping[str, Any], label: str, metrics: Sequence[str]) -> None:
        """One done cell's evidence paths, Δ, p, interval, per-seed Δ and verdict against the evidence."""
        paths = cell["evidence"]["a"] + cell["evidence"]["b"]
        if any(Path(p).is_absolute() for p in paths):
            raise MMDenoiseError(f"{path}: cell {label}: evidence paths must be relative to {out}, got {paths}")
        replicates = data_replicates(data, entries.get(cell["dataset"]), cell["backbone"])
        sides = (("a", cell["backbone"], cell["method"]), ("b", backbone_b(cell), cell["versus"]))
        for side, backbone, method in sides:
            expected = [] if method == CHANCE else _evidence_names(out, (cell["dataset"], backbone, method),
                                                                   replicates)
            if cell["evidence"][side] != expected:
                raise MMDenoiseError(f"{path}: cell {label}: evidence {cell['evidence'][side]} is not one folder "
                                     f"per seed of {cell['dataset']}"
                                     + (" on each user split" if any(k is not None for k, _ in replicates) else "")
                                     + f" ({expected})")
        fresh, deltas = comparison_numbers([out / p for p in cell["evidence"]["a"]],
                                           [out / p for p in cell["evidence"]["b"]], replicates, metrics, memo)
        if fresh["n_users"] != cell["n_users"]:
            raise MMDenoiseError(f"{path}: cell {label}: {cell['n_users']} users on the page, "
                                 f"{fresh['n_users']} in the evidence")
        for metric in metrics:
            for what in ("p", "delta", "ci"):
                shown, computed = cell[what][metric], fresh[what][metric]
                if not all(_close(float(x), y) for x, y in zip(*((shown, computed) if what == "ci"
                                                                else ([shown], [computed])))):
                    raise MMDenoiseError(f"{path}: cell {label}: {what} {metric} is {shown!r} on the "
                                         f"page but {computed!r} from the evidence")
        if len(deltas) != len(cell["seed_deltas"]) or not all(map(_close, cell["seed_deltas"], deltas)):
            raise MMDenoiseError(f"{path}: cell {label}: per-seed Δ {cell['seed_deltas']!r} on the page, "
                                 f"{deltas!r} from the evidence")
        expected = verdict(fresh["delta"][metrics[0]], fresh["p"][metrics[0]])
        if cell["verdict"] != expected:
            raise MMDenoiseError(f"{path}: cell {label}: verdict {cell['verdict']!r} on the page, {expected!r} "
                                 "by the rule")

    checked = 0
    for claim in data["claims"]:
        for cell in claim["cells"]:
            if cell["status"] == "done":
                check(cell, cell_label(claim, cell), KIND_METRICS.get(claim.get("kind", "beats"), data["metrics"]))
                checked += 1
    for cell in data.get("against_alone", []):
        check(cell, f"against the backbone alone: {_comparison_text(cell)}, {cell['dataset']}", data["metrics"])
    if "against_alone" in data:  # and none left out: each run with evidence beside its backbone alone with evidence
        runs = {(t["dataset"], t["backbone"], t["method"]) for t in data["tuning"]}
        listed = {(c["dataset"], c["backbone"], c["method"]) for c in data["against_alone"]}
        for d, x, m in sorted(runs - listed):
            replicates = data_replicates(data, entries.get(d), x)
            if (m != ALONE and (d, x, ALONE) in runs and _complete(out, (d, x, m), replicates) is not None
                    and _complete(out, (d, x, ALONE), replicates) is not None):
                raise MMDenoiseError(f"{path}: {m} vs {ALONE} on {x}, {d} has evidence on both sides but is not "
                                     "in against_alone")
    for result in data.get("results", []):
        run = (result["dataset"], result["backbone"], result["method"])
        label = f"test metrics of {run[2]} on {run[1]}, {run[0]}"
        replicates = data_replicates(data, entries.get(run[0]), run[1])
        expected = _evidence_names(out, run, replicates)
        if result["evidence"] != expected:
            raise MMDenoiseError(f"{path}: {label}: evidence {result['evidence']} is not one folder per seed of "
                                 f"{run[0]} ({expected})")
        fresh = run_means([out / p for p in expected], replicates)
        spread = seed_spread([out / p for p in expected], replicates)
        if result.get("best_epochs") != best_epochs([out / p for p in expected]):
            raise MMDenoiseError(f"{path}: {label}: best epochs {result.get('best_epochs')!r} on the page, "
                                 f"{best_epochs([out / p for p in expected])!r} in the evidence")
        if (spread is None) != (result.get("seed_sd") is None) or (spread is not None
                                                                   and not _close(result["seed_sd"], spread)):
            raise MMDenoiseError(f"{path}: {label}: seed spread {result.get('seed_sd')!r} on the page, "
                                 f"{spread!r} from the evidence")
        for metric in METRICS:
            if fresh["n_users"] != result["n_users"] or not _close(float(result["mean"][metric]),
                                                                    fresh["delta"][metric]):
                raise MMDenoiseError(f"{path}: {label}: {metric} {result['mean'][metric]!r} over "
                                     f"{result['n_users']} users on the page, {fresh['delta'][metric]!r} over "
                                     f"{fresh['n_users']} from the evidence")
    page = (out / data["page"]).resolve()
    if not page.is_file() or page.read_text(encoding="utf-8") != render_page(data):
        raise MMDenoiseError(f"{page}: not the rendering of {path} (edited by hand, or stale); regenerate it "
                             f"with {data['command']} --stage page")
    return checked
