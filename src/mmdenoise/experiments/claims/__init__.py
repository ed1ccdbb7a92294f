"""Do the papers' claims hold? One fair benchmark, its evidence committed (docs/design.md, The claims benchmark).

A claims spec (YAML, read with the bounded safe loader; unknown keys refused, every error names the
file and the key)::

    datasets:                       # a registered name or folder as it is, or a copy with planted noise
      - {name: ml-100k-add20, source: ml-100k, noise: {add: 0.2, seed: 1}}
      - name: ml-1m-add20
        source: ml-1m
        noise: {add: 0.2, seed: 1}
        set: {train.epochs: 300}    # fixed overrides for this dataset's runs only, after the spec's
        tune_from: ml-100k-add20    # no tuning here: each (backbone, method) runs the selection made there
        seeds: [1]                  # this dataset's final seeds (default: the spec's)
        cut: {lightgcn: [rce, wbpr]}  # (backbone, method) pairs not run here (or BACKBONE: all); cells say "cut"
        why: one seed and the cuts fit the budget (...)   # said on the page, under the datasets table
    budget: 8                       # tuning trials per (dataset, backbone, method), at most
    seeds: [1, 2, 3]                # the final runs of each selected configuration
    tune_seed: 0                    # the training seed of every tuning trial
    search_seed: 0                  # which grid points a budget smaller than the grid draws
    title: Do the papers' claims hold?   # the page's heading (this is the default)
    set: {train.patience: 10}       # fixed overrides for every run (never model, denoiser, dataset, seed)
    methods:                        # name -> a denoiser and the grid its paper tunes (sweep-spec keys)
      none: {denoiser: none}
      tce: {denoiser: tce, grid: {denoiser_params.drop_rate: [0.05, 0.1, 0.2]}}
    claims:
      - id: tce-beats-none
        claim: T-CE beats the bare backbone under added noise
        source: Wang et al., WSDM'21
        kind: beats                 # every method beats every versus, on each backbone and dataset
        method: tce                 # a name or a list
        versus: none                # a name or a list
        backbones: [lightgcn]
        datasets: [ml-100k-add20]   # optional: every dataset
      - id: loss-detects-in-id-space
        claim: the loss judges the planted noise better on an ID backbone than on a multi-modal one
        source: GUIDER, §3.2
        kind: detects               # each user's noise-detection AUC of the same judge, two backbones
        method: tce                 # a denoiser with interaction scores
        backbones: [lightgcn]       # better here ...
        against: [freedom]          # ... than here (no versus)

:func:`claims_study` runs it in stages, each resumable (finished trials are skipped, partial ones
resume, through the one runner), and ``<out>`` is what carries it across machines: a trial whose
record (tuning.json, selection.json) or evidence is committed there with the same settings key
(``runner.settings_key``) is not trained again (:func:`tuning_state`, :func:`committed_final`):

1. tune: per (dataset, backbone, method) a sweep over the method's grid, min(budget, grid size)
   trials (``spec.budget_subset``: the same points for every backbone and dataset) at
   ``tune_seed``, selected on validation Recall@20 alone (:func:`select`). A dataset with
   ``tune_from`` (an earlier dataset of the list, tuned itself) is not tuned: each of its (backbone,
   method) takes the grid point selected on that dataset for the same (backbone, method), so every
   method still has the same tuning budget (where large datasets cannot afford a sweep each);
2. final: the selected configuration at every seed of the dataset's ``seeds`` (else the spec's), with
   the spec's and the dataset's fixed settings; it waits (a log line says why) until the sweep that
   selects it has finished, on the dataset itself or on its ``tune_from``;
3. evidence: for every final run, under ``<out>/evidence/<dataset>/<backbone>/<method>/s<seed>/``,
   ``per_user.npz`` (users, test Recall@20 and NDCG@20), ``config.yaml`` (the run's resolved
   config, the dataset named as in the spec) and a small ``result.json`` (what pairing checks:
   the data condition), and ``selection.json`` (the dataset tuned on, the trials tried there, their
   validation objective, the one selected; a ``tune_from`` dataset lists no trials of its own)
   beside them, or ``tuning.json`` (the finished trials) while a sweep is in progress;
4. page: ``<out>/claims.json`` and the page ``<out>.md``, computed from the evidence files alone.
   A cell whose evidence is incomplete is pending, never left out.

A cell compares two methods on one backbone and dataset: Δ = mean over test users of A − B, each
user's metric averaged over the seeds first, and the two-sided paired t-test over those users
(``eval.pairing``, ``eval.significance``). A ``detects`` cell compares one judge on two backbones the
same way, over each user's noise-detection AUC among their own training interactions
(``eval.detection.per_user_auc``, which every run with a judgement and planted added interactions
writes to its per_user.npz and the evidence keeps). :func:`check_claims` (``mmdenoise report <out>``)
recomputes every Δ and p of claims.json from the evidence files (one folder per seed of the cell's
dataset) and re-renders the page.

The package, one job per module: ``spec`` (the YAML read into ``ClaimsSpec``, each (dataset, backbone,
method)'s sweep), ``runs`` (tuning state, selection, final runs, the evidence they leave), ``cells``
(comparisons, verdicts and per-run means from the evidence alone), ``page`` (claims.md, and the check
that recomputes it) and ``study`` (the stages, the plan of what is left, and which runs fit a time limit).
"""
from __future__ import annotations

from .cells import RULE, claim_verdict, compare_groups, compare_runs, page_data, verdict
from .page import CLAIMS_JSON, check_claims, dataset_seeds, render_page
from .runs import (EVIDENCE_DIR, collect_evidence, committed_final, committed_trials, run_seconds, select,
                   selection_record, tuning_records, tuning_state, write_evidence)
from .spec import OBJECTIVE, Claim, ClaimData, ClaimsSpec, Method, load_claims_spec, parse_claims_spec, tune_spec
from .study import ClaimsResult, claims_plan, claims_study, fit_in_hours, run_estimate, seconds_left

__all__ = ["CLAIMS_JSON", "EVIDENCE_DIR", "OBJECTIVE", "RULE", "Claim", "ClaimData", "ClaimsResult", "ClaimsSpec",
           "Method", "check_claims", "claim_verdict", "claims_plan", "claims_study", "collect_evidence",
           "committed_final", "committed_trials", "compare_groups", "compare_runs", "dataset_seeds", "fit_in_hours",
           "load_claims_spec", "page_data", "parse_claims_spec", "render_page", "run_estimate", "run_seconds",
           "seconds_left", "select", "selection_record", "tune_spec", "tuning_records", "tuning_state", "verdict",
           "write_evidence"]
