"""A claims study's runs: the tuning sweep and selection of each (dataset, backbone, method), its final
runs, and the evidence they leave under ``<out>`` (what carries a study across machines)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...errors import MMDenoiseError
from ...eval.pairing import DETECTION_AUC, LOCALISATION_GAIN
from ...log import get_logger
from ..runner import (best_record, make_trial, read_trial_record, resolved_config,
                      settings_key, stored_settings_key, trial_name, trial_status)
from ..spec import expand
from ..study import noised_copy
from .spec import ClaimData, ClaimsSpec, METRICS, OBJECTIVE, SPLIT_KEY, after_selection, tune_spec

log = get_logger(__name__)

SELECTION_JSON = "selection.json"
#: the finished trials of a sweep still in progress, beside its evidence (selection.json replaces it)
TUNING_JSON = "tuning.json"
EVIDENCE_DIR = "evidence"
EVIDENCE_RESULT_KEYS = ("model", "denoiser", "seed", "dataset", "best_epoch", "epochs_run", "device")


# ------------------------------------------------------------- tuning and finals
def dataset_arg(data: ClaimData, work: Path) -> str:
    """What the runs of ``data`` name as their dataset: the source itself, or its noised copy's folder in
    the work folder (``work/data/<name>``); known without reading any data."""
    return data.source if data.noise is None else str((Path(work) / "data" / data.name).resolve())


def prepare_dataset(data: ClaimData, work: Path) -> str:
    """:func:`dataset_arg`, the noised copy written first when missing (``study.noised_copy``: the same
    noise for the same spec, and an error when the folder holds other data)."""
    if data.noise is None:
        return data.source
    from ...data import load_dataset
    noise = data.noise
    return noised_copy(load_dataset(data.source), noise["kind"], noise["modality"], noise["level"], noise["seed"],
                       Path(dataset_arg(data, work)))


def _prefixed(trials: list[dict], run: tuple[str, str, str]) -> list[dict]:
    """The trials with their folders under ``<dataset>/<backbone>/<method>/``."""
    return [{**t, "name": "/".join((*run, t["name"]))} for t in trials]


def tune_trials(spec: ClaimsSpec, work: Path, run: tuple[str, str, str]) -> list[dict]:
    dataset, backbone, method = run
    return _prefixed(expand(tune_spec(spec, dataset, backbone, method, dataset_arg(spec.datasets[dataset], work))),
                     run)


def select(records: Sequence[Mapping[str, Any]]) -> dict | None:
    """The selected trial: the best validation objective among ``records`` (first in trial order on ties).

    The records are cut to name, params and validation objective before anything is compared, so no
    test metric can take part in the choice.
    """
    seen = [{"name": r["name"].rsplit("/", 1)[-1], "params": dict(r["params"]), "objective": r.get("objective")}
            for r in records]
    return best_record(seen, OBJECTIVE)


def trial_record(root: Path, trial: Mapping[str, Any]) -> dict:
    """A finished tuning trial as selection.json lists it: ``name`` (without the run's folders),
    ``params``, ``objective`` (validation), ``seconds`` (:func:`run_seconds`) and ``settings``
    (``runner.settings_key``: what the trial trained, on any machine)."""
    record = read_trial_record(root, trial, OBJECTIVE)
    return {"name": trial["name"].rsplit("/", 1)[-1], "params": dict(trial["params"]),
            "objective": record["objective"], "seconds": run_seconds(Path(record["path"])),
            "settings": settings_key(resolved_config(trial))}


def committed_trials(out: Path | None, run: tuple[str, str, str]) -> dict[str, dict]:
    """The tuning trials committed for ``run`` under ``out`` by name: selection.json's (a finished
    sweep), else tuning.json's (a sweep in progress); none without ``out``."""
    if out is None:
        return {}
    for name in (SELECTION_JSON, TUNING_JSON):
        path = evidence_folder(out, run) / name
        if path.is_file():
            try:
                trials = json.loads(path.read_text(encoding="utf-8"))["trials"]
                return {t["name"]: t for t in trials}
            except (ValueError, KeyError, TypeError) as exc:
                raise MMDenoiseError(f"{path}: not a tuning record ({exc}); restore it from git or remove it") \
                    from None
    return {}


def _is_trial(record: Mapping[str, Any], trial: Mapping[str, Any]) -> bool:
    """Whether a committed record is ``trial``'s: the same name (its parameters' hash) and, where the
    record has one (every record written since the key was added; older ones match by name), the same
    settings key."""
    key = record.get("settings")
    return key is None or key == settings_key(resolved_config(trial))


def tuning_state(spec: ClaimsSpec, work: Path, out: Path | None, run: tuple[str, str, str]
                 ) -> tuple[list[dict], list[dict]]:
    """The sweep that selects ``run``'s configuration (:meth:`ClaimsSpec.tuned_on`: its own, or the same
    backbone and method on its dataset's ``tune_from``): the records of its finished trials in trial
    order (:func:`trial_record`; a trial finished in ``work``, else one committed under ``out``), and
    the trials that have neither."""
    tuned = spec.tuned_on(run)
    committed = committed_trials(out, tuned)
    records, missing = [], []
    for trial in tune_trials(spec, work, tuned):
        short = trial["name"].rsplit("/", 1)[-1]
        if trial_status(Path(work) / "tune" / trial["name"], trial) == "finished":
            records.append(trial_record(Path(work) / "tune", trial))
        elif short in committed and _is_trial(committed[short], trial):
            records.append(committed[short])
        else:
            missing.append(trial)
    return records, missing


def tuning_records(spec: ClaimsSpec, work: Path, run: tuple[str, str, str], out: Path | None = None
                   ) -> list[dict] | None:
    """:func:`tuning_state`'s records when every trial has finished (in ``work`` or committed under
    ``out``), else None."""
    records, missing = tuning_state(spec, work, out, run)
    return None if missing else records


def final_trials(spec: ClaimsSpec, work: Path, chosen: Mapping[str, Any], run: tuple[str, str, str]) -> list[dict]:
    """The selected grid point on ``run``'s dataset at each of its replicates (:meth:`ClaimsSpec.replicates`:
    one trial per seed, in seed order, on each user split of a sequential method). chosen: :func:`select`
    of :func:`tuning_records`; for a ``tune_from`` dataset it was chosen on the other dataset, and the
    point of ``run``'s own (never trained) sweep with the same parameters is repeated: the same denoiser
    settings, with this dataset and its fixed settings. For a method with ``selection_of`` it was chosen
    for that method, and the same point runs with this method's denoiser and fixed settings."""
    trial = next(t for t in tune_trials(spec, work, run) if t["name"].rsplit("/", 1)[-1] == chosen["name"])
    out = []
    for split, seed in spec.replicates(run[0], run[1]):
        on_split = [] if split is None else [(SPLIT_KEY, split)]
        params = {**trial["params"], **dict(on_split), "seed": seed}
        out.append(make_trial(params, {**trial["config"], "seed": seed},
                              [*trial["overrides"], *after_selection(spec, run[2]), *on_split],
                              name="/".join((*run, trial_name(params)))))
    return out


# --------------------------------------------------------------- evidence
def evidence_folder(out: Path, run: tuple[str, str, str], seed: int | None = None, split: int | None = None) -> Path:
    """``<out>/evidence/<dataset>/<backbone>/<method>/``, or one replicate's folder in it: ``s<seed>``, or
    ``split<k>-s<seed>`` on user split k."""
    folder = Path(out) / EVIDENCE_DIR / Path(*run)
    if seed is None:
        return folder
    return folder / (f"s{seed}" if split is None else f"split{split}-s{seed}")


def run_seconds(run_dir: Path) -> float:
    """Seconds a run spent training and validating, summed over its epochs (metrics.jsonl), so a run
    resumed across sessions counts every part; wall clock of one thread, on whatever machine ran it."""
    from ...training import record
    return float(sum(row.get("train_seconds", 0.0) + row.get("eval_seconds", 0.0)
                     for row in record.read_metrics(run_dir)))


def write_evidence(run_dir: Path, dest: Path, dataset_name: str) -> None:
    """The compact evidence of one finished run: per_user.npz (``users`` and the test metrics, compressed),
    config.yaml (the resolved config, ``dataset`` as the spec names it) and result.json (what the run
    was and its data condition, the validation and test means), with the run folder's file names so
    ``eval.pairing`` reads the folder as it reads a run."""
    import yaml

    from ...config import load_yaml
    from ...io import save_npz, write_json, write_text
    from ...training import record
    result = record.read_result(run_dir)
    per_user = record.read_per_user(run_dir)
    dest.mkdir(parents=True, exist_ok=True)
    # the per-user judgements a detects or localises cell pairs, where the run recorded them
    judged = {k: per_user[k] for k in ("detection_users", DETECTION_AUC, "localisation_users", LOCALISATION_GAIN)
              if k in per_user}
    save_npz(dest / record.PER_USER_FILE, compressed=True, users=per_user["users"],
             **{f"test_{m}": per_user[f"test_{m}"] for m in METRICS}, **judged)
    config = load_yaml(run_dir / record.CONFIG_FILE)
    config["dataset"] = dataset_name
    write_text(dest / record.CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    write_json(dest / record.RESULT_FILE, {**{k: result.get(k) for k in EVIDENCE_RESULT_KEYS},
                                           **({"sequence": result["sequence"]} if "sequence" in result else {}),
                                           "seconds": run_seconds(run_dir),
                                           "valid": {m: result["valid"][m] for m in METRICS},
                                           "test": {m: result["test"][m] for m in METRICS}})


def selection_record(spec: ClaimsSpec, run: tuple[str, str, str], records: Sequence[Mapping[str, Any]]) -> dict:
    """``selection.json`` of ``run`` from its :func:`tuning_records`: ``tuned_on`` (the dataset whose
    sweep chose), the trials tried there, the one ``selected`` (name, params, validation objective on
    ``tuned_on``). A ``tune_from`` dataset has no tuning of its own: no trials (they are in the other
    dataset's selection.json), ``planned`` and ``used`` 0; nor has a method with ``selection_of``
    (``selection_of``: the method whose selection it runs)."""
    tuned = spec.tuned_on(run)
    source, own = tuned[0], tuned == run
    return {"objective": f"valid {OBJECTIVE.metric}", "tuned_on": source,
            "selection_of": spec.methods[run[2]].selection_of, "tune_seed": spec.tune_seed,
            "budget": spec.budget, "grid_size": spec.methods[run[2]].grid_size,
            "planned": len(records) if own else 0, "used": len(records) if own else 0,
            "trials": [dict(r) for r in records] if own else [], "selected": select(records)}


def committed_final(out: Path, run: tuple[str, str, str], replicate: tuple[int | None, int],
                    trial: Mapping[str, Any]) -> bool:
    """Whether ``out`` holds the evidence of final ``trial`` (``run`` at ``replicate``): its per-user
    file and result, and a config.yaml with the trial's settings key (``runner.settings_key``)."""
    from ...training import record
    split, seed = replicate
    folder = evidence_folder(out, run, seed, split)
    return ((folder / record.PER_USER_FILE).is_file() and (folder / record.RESULT_FILE).is_file()
            and stored_settings_key(folder) == settings_key(resolved_config(trial)))


def collect_evidence(spec: ClaimsSpec, work: Path, out: Path) -> int:
    """Copy the evidence of every finished final run of a tuned (dataset, backbone, method); return how
    many seed folders it wrote. Nothing trains and no data is read.

    ``out`` is the study's memory across machines (``work`` need not survive a session): a sweep in
    progress commits its finished trials to tuning.json, a finished one its selection.json
    (:func:`selection_record`), and both count as tuned when the study goes on elsewhere
    (:func:`tuning_state`). For a run whose selection is known, the evidence is made to match it: a
    seed whose final run has not finished in ``work`` keeps committed evidence of the same trial
    (:func:`committed_final`) and loses any other (another selection's, or other settings'). Evidence of
    a (dataset, backbone, method) that is no longer a run of the spec (cut since, or removed) is
    removed too (:func:`prune_evidence`), so the folder holds the spec's runs only.
    """
    from ...io import write_json
    written = 0
    for run in spec.runs():
        records, missing = tuning_state(spec, work, out, run)
        folder = evidence_folder(out, run)
        if missing:
            if spec.tuned_on(run) == run and records:
                folder.mkdir(parents=True, exist_ok=True)
                write_json(folder / TUNING_JSON, {"objective": f"valid {OBJECTIVE.metric}",
                                                  "planned": len(records) + len(missing), "trials": records})
                if (folder / SELECTION_JSON).exists():  # committed with other settings: no longer the selection
                    log.warning("claims: %s: its selection.json does not match the spec; the sweep goes on",
                                "/".join(run))
                    (folder / SELECTION_JSON).unlink()
            continue
        selection = selection_record(spec, run, records)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / SELECTION_JSON, selection)
        (folder / TUNING_JSON).unlink(missing_ok=True)
        replicates = spec.replicates(run[0], run[1])
        finals = final_trials(spec, work, selection["selected"], run)
        for (split, seed), trial in zip(replicates, finals):
            dest = evidence_folder(out, run, seed, split)
            if trial_status(Path(work) / "final" / trial["name"], trial) == "finished":
                write_evidence(Path(work) / "final" / trial["name"], dest, run[0])
                written += 1
            elif dest.exists() and not committed_final(out, run, (split, seed), trial):
                shutil.rmtree(dest)
        wanted = {evidence_folder(out, run, seed, split).name for split, seed in replicates}
        for stale in folder.iterdir():
            if stale.is_dir() and stale.name not in wanted:
                shutil.rmtree(stale)
    prune_evidence(spec, out)
    return written


def prune_evidence(spec: ClaimsSpec, out: Path) -> list[Path]:
    """Remove the evidence folders ``<out>/evidence/<dataset>/<backbone>/<method>/`` of everything that is not a
    run of ``spec`` (a pair cut since, a method or dataset removed), then the folders left empty; return
    the run folders removed. Committed evidence stays in git's history."""
    root = Path(out) / EVIDENCE_DIR
    kept = {evidence_folder(out, run) for run in spec.runs()}
    removed = [folder for folder in sorted(root.glob("*/*/*")) if folder.is_dir() and folder not in kept]
    for folder in removed:
        log.info("claims: %s is not a run of the spec (cut or removed): its evidence is removed",
                 folder.relative_to(root).as_posix())
        shutil.rmtree(folder)
    for level in ("*/*", "*"):
        for folder in sorted(root.glob(level)):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return removed


def _complete(out: Path, run: tuple[str, str, str], replicates: Sequence[tuple[int | None, int]]
              ) -> list[Path] | None:
    """The evidence folders of ``run`` at every (split, seed), or None while one is missing."""
    from ...training import record
    folders = [evidence_folder(out, run, seed, split) for split, seed in replicates]
    done = all((f / record.PER_USER_FILE).is_file() and (f / record.RESULT_FILE).is_file() for f in folders)
    return folders if done else None
