"""The trial runner: trials carry (key, value) pairs, not text; names and committed trial folders are
those of earlier versions; a value reaches the run config exactly as the spec gave it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import mmdenoise.api  # noqa: F401  (bound to the real load_dataset before a test patches mmdenoise.data)
from mmdenoise.config import override_pairs
from mmdenoise.errors import ConfigError
from mmdenoise.experiments.runner import (Objective, make_trial, param_text, resolved_config, run_config,
                                          run_trial, trial_defaults, trial_name, trial_status)
from mmdenoise.experiments.spec import expand, parse_spec
from mmdenoise.training import record

RESULTS = Path(__file__).parents[2] / "docs" / "results"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from mmdenoise.data.synth import generate
    return generate("tiny", seed=0, out=tmp_path_factory.mktemp("data") / "tiny", image_dim=32, text_dim=16)


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("params, name", [  # names written by the versions that turned values into text
    ({"train.lr": 1e-05, "n_layers": 2}, "lr=1.0e-05_n_layers=2-891d20b738"),
    ({"train.lr": 0.0001, "train.weight_decay": 1.5e-07, "denoiser": "tce"},
     "lr=0.0001_weight_decay=1.5e-07_denoiser=tce-e5d8e02014"),
    ({"train.ks": [10, 20], "flag": True, "opt": None}, "ks=-10-20-_flag=true_opt=null-0dee55f708"),
    ({"lambda": float("nan"), "big": 2.5e20, "neg": -0.0, "inf": float("inf")},
     "lambda=.nan_big=2.5e+20_neg=-0.0_inf=.inf-4032a79f68"),
    ({"graph": {"a": 1e-07, "b": "x y"}, "names": ["mf", "lightgcn"]},
     "graph=-a-1.0e-07-b-x-y-_names=-mf-lightgcn-9d93a3a3e0"),
    ({"model": "lightgcn", "denoiser": "none", "noise": "swap:image", "level": 0.15, "seed": 2},
     "model=lightgcn_denoiser=none_noise=swap-image_level=0.15_seed=2-907b003324"),
])
def test_trial_names_are_those_of_earlier_versions(params, name):
    assert trial_name(params) == name


def test_equal_values_of_other_types_or_signs_keep_their_own_text():
    # scalar texts are cached; 1 == 1.0 == True and 0.0 == -0.0, yet each prints its own way, in either order
    pairs = [(1, "1"), (1.0, "1.0"), (True, "true"), (0.0, "0.0"), (-0.0, "-0.0"), (0, "0"), (False, "false"),
             (None, "null"), (float("nan"), ".nan"), (1e-5, "1.0e-05")]
    for order in (pairs, pairs[::-1]):
        assert [param_text(value) for value, _ in order] == [text for _, text in order]


@pytest.mark.parametrize("summary", sorted(str(p.relative_to(RESULTS)) for p in RESULTS.rglob("*.json")
                                           if "runs" in json.loads(p.read_text(encoding="utf-8"))))
def test_committed_study_runs_keep_their_names(summary):
    runs = json.loads((RESULTS / summary).read_text(encoding="utf-8"))["runs"]
    assert runs and all(trial_name(run["params"]) == run["name"] for run in runs)


@pytest.mark.parametrize("name", sorted(p.parent.name for p in RESULTS.glob("baselines/*/baselines.json")))
def test_committed_baselines_are_finished_trials_and_rewrite_identically(tmp_path, monkeypatch, name):
    """``study baselines --finished-only`` on a copy of a committed study folder: every run is recognised
    as finished (its trial.json holds ``key=value`` text), the page comes out unchanged and the JSON too,
    but for each run's folder, which summaries record since after these were committed."""
    from mmdenoise.experiments.study import baseline_study
    committed = RESULTS / "baselines" / name
    summary = json.loads((committed / "baselines.json").read_text(encoding="utf-8"))
    out = shutil.copytree(committed, tmp_path / name)
    monkeypatch.setattr("mmdenoise.data.load_dataset",  # the data itself is not needed to table finished runs
                        lambda dataset: SimpleNamespace(name=summary["dataset"], fingerprint=summary["fingerprint"]))
    result = baseline_study(name, summary["models"], seeds=",".join(map(str, summary["seeds"])) + ",", out=out,
                            finished_only=True)
    assert sorted(r["name"] for r in result.records) == sorted(p.parent.name for p in committed.glob("*/trial.json"))
    assert (out / "baselines.md").read_bytes() == (committed / "baselines.md").read_bytes()
    assert json.loads((out / "baselines.json").read_text()) == \
        {**summary, "runs": [{**run, "path": run["name"]} for run in summary["runs"]]}


# ------------------------------------------------------------------ pairs
def test_overrides_are_parsed_once_into_pairs():
    assert override_pairs(["train.lr=0.0001", " n_layers = 3", "graph=iig", ("train.ks", [10, 20]), ["seed", 1]]) \
        == [("train.lr", 1e-4), ("n_layers", 3), ("graph", "iig"), ("train.ks", [10, 20]), ("seed", 1)]
    assert override_pairs({"train.lr": 1e-4}) == [("train.lr", 1e-4)] and override_pairs(None) == []
    for bad in (["lr"], [("lr",)], [(3, 1)], "train.lr=1"):
        with pytest.raises(ConfigError):
            override_pairs(bad)


def test_values_reach_the_run_config_exactly(tmp_path, tiny):
    """1e-4, a list and a float YAML 1.1 would read as text travel spec → trial → trial.json → config."""
    spec = parse_spec({"dataset": str(tiny), "model": "lightgcn", "set": {"train.epochs": 1, "weight_decay": 1e-7},
                       "space": {"train.lr": [1e-4], "train.ks": [[10, 20], [5, 20]]}})
    trials = expand(spec)
    assert [t["params"]["train.ks"] for t in trials] == [[10, 20], [5, 20]]
    trial = trials[0]
    assert ("train.lr", 1e-4) in trial["overrides"] and ("weight_decay", 1e-7) in trial["overrides"]
    stored = json.loads(json.dumps(trial))                       # as trial.json holds it
    assert run_config(stored) == run_config(trial)
    config = resolved_config(stored)
    assert config.train.lr == 1e-4 and config.train.weight_decay == 1e-7 and config.train.ks == [10, 20]

    record_ = run_trial(tmp_path, trial, spec.objective)
    assert record_["status"] == "trained" and trial_status(tmp_path / trial["name"], stored) == "finished"
    written = yaml.safe_load((tmp_path / trial["name"] / record.CONFIG_FILE).read_text())
    assert written["train"]["lr"] == 1e-4 and written["train"]["weight_decay"] == 1e-7
    assert written["train"]["ks"] == [10, 20] and written["train"]["threads"] == 1
    on_disk = json.loads((tmp_path / trial["name"] / "trial.json").read_text())
    assert ["train.lr", 0.0001] in on_disk["overrides"]


def test_trial_json_of_earlier_versions_is_the_same_trial(tmp_path):
    """A trial.json with ``key=value`` text is the trial whose pairs that text parses to; another value is a clash."""
    trial = make_trial({"variant": "iig"}, {"dataset": "ml-100k"},
                       trial_defaults(Objective()) + [("model", "mf"), ("denoiser", "damrs"),
                                                      ("denoiser_params.graph", "iig"), ("train.lr", 1e-4)])
    folder = tmp_path / trial["name"]
    folder.mkdir()
    old = ["train.threads=1", "train.progress=false", "train.valid_metric=recall@20", "model=mf", "denoiser=damrs",
           'denoiser_params.graph="iig"', "train.lr=1.0e-04"]
    (folder / "trial.json").write_text(json.dumps({**trial, "overrides": old}))
    (folder / record.RESULT_FILE).write_text("{}")
    assert trial_status(folder, trial) == "finished"
    (folder / "trial.json").write_text(json.dumps({**trial, "overrides": old[:-1] + ["train.lr=1.0e-03"]}))
    with pytest.raises(ConfigError, match="run with other settings"):
        trial_status(folder, trial)


def test_a_work_folder_trained_elsewhere_keeps_its_trials(tmp_path, tiny):
    """A study's work folder trained on another machine (or moved) names its data by that machine's path:
    its finished runs are still the trials when the data there has the recorded fingerprint, and a
    different dataset under the same folder name is refused."""
    from mmdenoise.data.synth import generate
    elsewhere = shutil.copytree(tiny, tmp_path / "gpu-machine" / "data" / "tiny")
    settings = trial_defaults(Objective()) + [("model", "mf"), ("train.epochs", 1)]
    trained = make_trial({"seed": 1}, {"dataset": str(elsewhere)}, settings)
    run_trial(tmp_path / "gpu-machine" / "final", trained, Objective())
    here = shutil.copytree(tmp_path / "gpu-machine", tmp_path / "here")
    shutil.rmtree(tmp_path / "gpu-machine")
    trial = make_trial({"seed": 1}, {"dataset": str(here / "data" / "tiny")}, settings)
    assert trial_status(here / "final" / trial["name"], trial) == "finished"
    other = generate("tiny", seed=1, out=tmp_path / "other" / "tiny", image_dim=32, text_dim=16)
    for data in (other, tmp_path / "missing" / "tiny"):
        with pytest.raises(ConfigError, match=r"holds this trial run on dataset .*gpu-machine.*build that dataset"):
            trial_status(here / "final" / trial["name"], make_trial({"seed": 1}, {"dataset": str(data)}, settings))
    with pytest.raises(ConfigError, match="run with other settings"):
        trial_status(here / "final" / trial["name"], make_trial({"seed": 2}, {"dataset": str(other)}, settings))
