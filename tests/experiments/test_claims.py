"""The claims benchmark (`study claims`): spec validation, the stages end to end on the tiny preset, the
evidence alone reproducing every p (`report` on a claims folder), and selection on validation only."""
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mmdenoise.cli import app
from mmdenoise.errors import ConfigError, MMDenoiseError
from mmdenoise.eval.pairing import paired_per_user
from mmdenoise.eval.significance import mean_ci, paired_ttest
from mmdenoise.experiments.claims.page import early_stop_lines, multiplicity_lines, seed_lines, summary_table
from mmdenoise.experiments.claims.readme import readme_with_verdicts
from mmdenoise.experiments.claims import (CLAIMS_JSON, RULE, check_claims, claims_plan, claims_study,
                                          load_claims_spec, parse_claims_spec, select, tune_spec)
from mmdenoise.experiments.spec import expand


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny synthetic preset with small feature matrices (fast to read)."""
    from mmdenoise.data.synth import generate
    return generate("tiny", seed=0, out=tmp_path_factory.mktemp("data") / "tiny", image_dim=32, text_dim=16)


def _raw(tiny, **change):
    raw = {"datasets": [{"name": "tiny-add20", "source": str(tiny), "noise": {"add": 0.2, "seed": 1}}],
           "budget": 2, "seeds": [1, 2], "set": {"train.epochs": 2},
           "methods": {"none": {"denoiser": "none"},
                       "tce": {"denoiser": "tce", "grid": {"denoiser_params.drop_rate": [0.1, 0.2],
                                                           "denoiser_params.num_gradual": [0, 10]}}},
           "claims": [{"id": "tce-beats-none", "claim": "T-CE beats the bare backbone", "source": "a test",
                       "kind": "beats", "method": "tce", "versus": "none", "backbones": ["mf"]}]}
    raw.update(change)
    return raw


def _spec_file(folder: Path, raw: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _claim(**change):
    return [{"id": "c", "claim": "x", "source": "y", "kind": "beats", "method": "tce", "versus": "none",
             "backbones": ["mf"], **change}]


# ------------------------------------------------------------ validation
@pytest.mark.parametrize("change, message", [
    ({"seedz": [1]}, r"spec\.yaml: unknown key\(s\) \['seedz'\]"),
    ({"title": ["x"]}, r"spec\.yaml: title: expected one line of text .*got \['x'\]"),
    ({"budget": 0}, r"spec\.yaml: budget: expected an integer >= 1 .*got 0"),
    ({"budget": "8"}, r"spec\.yaml: budget: expected an integer >= 1 .*got '8'"),
    ({"seeds": "1,1"}, r"spec\.yaml: seeds: give distinct"),
    ({"set": {"model": "lightgcn"}}, r"spec\.yaml: set\.model: the spec decides model"),
    ({"datasets": [{"name": "d", "source": "no-such-data"}]},
     r"spec\.yaml: datasets\[0\]\.source: unknown dataset 'no-such-data'"),
    ({"datasets": [{"name": "d", "source": "synth-tiny", "noise": {"add": 0.2, "remove": 0.1}}]},
     r"spec\.yaml: datasets\[0\]\.noise: give exactly one kind of noise"),
    ({"datasets": [{"name": "d", "source": "synth-tiny", "noize": {"add": 0.2}}]},
     r"spec\.yaml: datasets\[0\]: unknown key\(s\) \['noize'\]"),
    ({"datasets": [{"name": "d", "source": "synth-tiny", "why": ["cost"]}]},
     r"spec\.yaml: datasets\[0\]\.why: expected text \(why the dataset is run as it is\), got \['cost'\]"),
    ({"datasets": [{"name": "d", "source": "synth-tiny", "why": " "}]},
     r"spec\.yaml: datasets\[0\]\.why: expected text"),
    ({"methods": {"none": {"denoiser": "none"}, "tce": {"denoiser": "tcee"}}},
     r"spec\.yaml: methods\.tce\.denoiser: unknown denoiser 'tcee'"),
    ({"methods": {"none": {"denoiser": "none"}, "tce": {"denoiser": "tce", "grid": {"drop_rat": [0.1]}}}},
     r"spec\.yaml: methods\.tce on mf: space\.drop_rat: .*'drop_rat' is not a known key"),
    ({"methods": {"none": {"denoiser": "none"}, "tce": {"denoiser": "tce", "grid": {"drop_rate": 0.1}}}},
     r"spec\.yaml: methods\.tce\.grid\.drop_rate: expected a non-empty list of values, got 0\.1"),
    ({"claims": _claim(method="rce")}, r"spec\.yaml: claims\[0\]\.method: unknown method 'rce'; methods: none, tce"),
    ({"claims": _claim(versus=["none", "bod"])}, r"spec\.yaml: claims\[0\]\.versus: unknown method 'bod'"),
    ({"claims": _claim(backbones=["mf", "lightgnc"])},
     r"spec\.yaml: claims\[0\]\.backbones: unknown backbone 'lightgnc'"),
    ({"claims": _claim(datasets=["ml-1m-add20"])}, r"spec\.yaml: claims\[0\]\.datasets: unknown dataset 'ml-1m-add20'"),
    ({"claims": _claim(kind="ties")}, r"spec\.yaml: claims\[0\]\.kind: unknown kind 'ties'; kinds: beats"),
    ({"claims": _claim(claimz="x")}, r"spec\.yaml: claims\[0\]: unknown key\(s\) \['claimz'\]"),
    ({"claims": [{"id": "c", "claim": "x", "source": "y", "kind": "beats", "method": "tce", "versus": "none"}]},
     r"spec\.yaml: claims\[0\]: missing key 'backbones'"),
])
def test_spec_errors_name_the_file_the_key_and_the_value(tmp_path, tiny, change, message):
    path = _spec_file(tmp_path, _raw(tiny, **change))
    with pytest.raises(ConfigError, match=message):
        load_claims_spec(path)


def _two(tiny, first: dict | None = None, second: dict | None = None) -> list[dict]:
    """Two datasets, tiny-add20 then tiny-clean, each with extra keys."""
    return [{"name": "tiny-add20", "source": str(tiny), "noise": {"add": 0.2, "seed": 1}, **(first or {})},
            {"name": "tiny-clean", "source": str(tiny), **(second or {})}]


@pytest.mark.parametrize("first, second, message", [
    (None, {"tune_from": "tiny-typo"},
     r"spec\.yaml: datasets\[1\]\.tune_from: 'tiny-clean' names unknown dataset 'tiny-typo'; datasets: tiny-add20, "
     r"tiny-clean"),
    ({"tune_from": "tiny-clean"}, None,
     r"spec\.yaml: datasets\[0\]\.tune_from: 'tiny-clean' is not before 'tiny-add20' in the list"),
    (None, {"tune_from": "tiny-clean"},
     r"spec\.yaml: datasets\[1\]\.tune_from: 'tiny-clean' cannot be tuned on itself; .*\(tiny-add20\)"),
    (None, {"tune_from": ["tiny-add20"]},
     r"spec\.yaml: datasets\[1\]\.tune_from: expected a name .*got \['tiny-add20'\]"),
    (None, {"seeds": [1, 1]}, r"spec\.yaml: datasets\[1\]\.seeds: give distinct non-negative seeds, got \[1, 1\]"),
    (None, {"seeds": [-1]}, r"spec\.yaml: datasets\[1\]\.seeds: give distinct non-negative seeds, got \[-1\]"),
    (None, {"seeds": "x"}, r"spec\.yaml: datasets\[1\]\.seeds: expected a count .*got 'x'"),
    (None, {"seedz": [1]},
     r"spec\.yaml: datasets\[1\]: unknown key\(s\) \['seedz'\] \(did you mean 'seeds'\?\); valid keys: .*seeds"),
])
def test_tune_from_and_dataset_seeds_errors_name_the_file_the_entry_and_the_value(tmp_path, tiny, first, second,
                                                                                  message):
    raw = _raw(tiny, datasets=_two(tiny, first, second), claims=_claim(datasets=["tiny-add20", "tiny-clean"]))
    with pytest.raises(ConfigError, match=message):
        load_claims_spec(_spec_file(tmp_path, raw))


def test_a_chained_tune_from_is_refused(tmp_path, tiny):
    datasets = [*_two(tiny, None, {"tune_from": "tiny-add20"}),
                {"name": "tiny-again", "source": str(tiny), "tune_from": "tiny-clean"}]
    raw = _raw(tiny, datasets=datasets)
    with pytest.raises(ConfigError, match=r"spec\.yaml: datasets\[2\]\.tune_from: 'tiny-again' names 'tiny-clean', "
                                          r"which is itself tuned on 'tiny-add20'; selections are not chained"):
        load_claims_spec(_spec_file(tmp_path, raw))


def _with_ablation(tiny, ablation: dict, **change) -> dict:
    """The tiny spec with T-CE tuned on drop_rate alone and a method ``tce-x`` given by ``ablation``."""
    methods = {"none": {"denoiser": "none"},
               "tce": {"denoiser": "tce", "grid": {"denoiser_params.drop_rate": [0.1, 0.2]}},
               "tce-x": ablation}
    return _raw(tiny, methods=methods, **change)


@pytest.mark.parametrize("ablation, message", [
    ({"denoiser": "tce", "selection_of": "rce"},
     r"spec\.yaml: methods\.tce-x\.selection_of: unknown method 'rce'; methods: none, tce, tce-x"),
    ({"denoiser": "tce", "selection_of": "tce-x"},
     r"spec\.yaml: methods\.tce-x\.selection_of: 'tce-x' cannot run its own selection"),
    ({"denoiser": "tce", "selection_of": "tce", "grid": {"denoiser_params.num_gradual": [0, 10]}},
     r"spec\.yaml: methods\.tce-x\.grid: a method with selection_of runs 'tce'.s selected configuration"),
    ({"denoiser": "tce", "grid": {"denoiser_params.drop_rate": [0.1]}, "set": {"denoiser_params.drop_rate": 0.5}},
     r"spec\.yaml: methods\.tce-x\.set\.denoiser_params\.drop_rate: 'tce-x' tunes denoiser_params\.drop_rate"),
    ({"denoiser": "tce", "selection_of": "tce", "set": {"seed": 3}},
     r"spec\.yaml: methods\.tce-x\.set\.seed: the spec decides seed"),
    ({"denoiser": "rce", "selection_of": "tce"},
     r"spec\.yaml: methods\.tce-x on mf: space\.denoiser_params\.drop_rate: denoiser_params \(rce\): "
     r"unknown key\(s\) \['drop_rate'\]"),
    ({"denoiser": "tce", "selection_of": "tce", "set": {"denoiser_params.num_gradul": 0}},
     r"spec\.yaml: methods\.tce-x\.set on mf: .*unknown key\(s\) \['num_gradul'\]"),
])
def test_selection_of_errors_name_the_file_the_method_and_the_value(tmp_path, tiny, ablation, message):
    raw = _with_ablation(tiny, ablation, claims=_claim(method="tce", versus=["none", "tce-x"]))
    with pytest.raises(ConfigError, match=message):
        load_claims_spec(_spec_file(tmp_path, raw))


def test_selection_of_is_not_chained(tmp_path, tiny):
    raw = _with_ablation(tiny, {"denoiser": "tce", "selection_of": "tce"},
                         claims=_claim(method="tce", versus=["none", "tce-x", "tce-y"]))
    raw["methods"]["tce-y"] = {"denoiser": "tce", "selection_of": "tce-x"}
    with pytest.raises(ConfigError, match=r"spec\.yaml: methods\.tce-y\.selection_of: 'tce-x' runs 'tce'.s selection "
                                          r"itself; selections are not chained"):
        load_claims_spec(_spec_file(tmp_path, raw))


def test_an_ablation_runs_the_full_methods_selection_with_its_own_settings_and_no_tuning(tmp_path, tiny):
    """``tce-x`` (selection_of: tce; set num_gradual 0 and drop_rate 0.3) trains no tuning trial: its final
    runs take the point selected for T-CE on the same backbone and dataset, then its own settings, which
    replace a selected value (drop_rate) and the spec's (num_gradual);
    selection.json and the page say whose selection it runs; report recomputes its cell."""
    raw = _with_ablation(tiny, {"denoiser": "tce", "selection_of": "tce",
                                "set": {"denoiser_params.num_gradual": 0, "denoiser_params.drop_rate": 0.3}},
                         claims=_claim(method="tce", versus="tce-x"))
    raw["set"]["denoiser_params.num_gradual"] = 10  # the spec's value, which the method's replaces
    out, work = tmp_path / "claims", tmp_path / "work"
    spec = load_claims_spec(_spec_file(out, raw))
    assert spec.tuned_runs() == [("tiny-add20", "mf", "tce")] and spec.trials_planned("tce-x") == 0
    statuses = []
    result = claims_study(out / "spec.yaml", work, on_result=lambda r: statuses.append(r["status"]))
    assert statuses == ["trained"] * 6 and (result.done, result.pending) == (1, 0)  # tce 2 trials; 2 x 2 finals
    assert sorted(p.name for p in (work / "tune" / "tiny-add20" / "mf").iterdir()) == ["tce"]
    tuned = json.loads((out / "evidence" / "tiny-add20" / "mf" / "tce" / "selection.json").read_text())
    ablation = json.loads((out / "evidence" / "tiny-add20" / "mf" / "tce-x" / "selection.json").read_text())
    assert ablation["selection_of"] == "tce" and tuned["selection_of"] is None
    assert ablation["trials"] == [] and ablation["used"] == ablation["planned"] == 0
    assert ablation["selected"] == tuned["selected"]
    for seed in (1, 2):
        config = yaml.safe_load((out / "evidence" / "tiny-add20" / "mf" / "tce-x" / f"s{seed}" / "config.yaml")
                                .read_text())
        full = yaml.safe_load((out / "evidence" / "tiny-add20" / "mf" / "tce" / f"s{seed}" / "config.yaml")
                              .read_text())
        assert config["denoiser"] == "tce" and config["seed"] == seed
        # the selected point, then the ablation's own settings: a tuned key it sets takes its value
        assert full["denoiser_params"]["drop_rate"] == tuned["selected"]["params"]["denoiser_params.drop_rate"]
        assert config["denoiser_params"]["drop_rate"] == 0.3
        assert config["denoiser_params"]["num_gradual"] == 0 and full["denoiser_params"]["num_gradual"] == 10
    page = (tmp_path / "claims.md").read_text()
    assert "| mf | tce-x | as tce |" in page and "| tce-x | tce | tce's selection, with " \
        "`denoiser_params.num_gradual=0`, `denoiser_params.drop_rate=0.3` | – | 0 |" in page
    assert "A method run *as* another" in page and "(as tce) |" in page
    shutil.rmtree(work)
    assert check_claims(out) == 1


def _detects(**change) -> dict:
    return {"id": "d", "claim": "the loss judges better on MF", "source": "z", "kind": "detects",
            "method": "tce", "backbones": ["mf"], "against": ["lightgcn"], **change}


@pytest.mark.parametrize("claim, message", [
    ({"versus": "none"}, r"spec\.yaml: claims\[1\]\.versus: kind detects compares by against, not versus"),
    ({"against": None}, r"spec\.yaml: claims\[1\]\.against: expected a name or a non-empty list of names, got None"),
    ({"against": ["mf"]}, r"spec\.yaml: claims\[1\]: \['mf'\] is on both sides of the claim"),
    ({"against": ["lightgnc"]}, r"spec\.yaml: claims\[1\]\.against: unknown backbone 'lightgnc'"),
])
def test_detects_claims_errors_name_the_file_the_claim_and_the_key(tmp_path, tiny, claim, message):
    raw = _raw(tiny, claims=[*_claim(), _detects(**claim)])
    with pytest.raises(ConfigError, match=message):
        load_claims_spec(_spec_file(tmp_path, raw))
    without = _raw(tiny, claims=[*_claim(), {k: v for k, v in _detects().items() if k != "against"}])
    with pytest.raises(ConfigError, match=r"claims\[1\]: missing key 'against' \(kind detects\)"):
        load_claims_spec(_spec_file(tmp_path, without))
    beats_with_against = _raw(tiny, claims=[_claim(against=["lightgcn"])[0]])
    with pytest.raises(ConfigError, match=r"claims\[0\]\.against: kind beats compares by versus, not against"):
        load_claims_spec(_spec_file(tmp_path, beats_with_against))


def test_a_detects_claim_pairs_each_users_detection_auc_of_one_judge_on_two_backbones(tmp_path, tiny):
    """tce on mf vs tce on lightgcn: the cell pairs the users' detection AUCs (per_user.npz, kept in the
    evidence), its p is the paired test of the final runs' values, and report recomputes it alone."""
    from mmdenoise.eval.pairing import DETECTION_AUC
    raw = _raw(tiny, claims=[*_claim(), _detects()])
    out, work = tmp_path / "claims", tmp_path / "work"
    spec = load_claims_spec(_spec_file(out, raw))
    assert ("tiny-add20", "lightgcn", "tce") in spec.runs() and ("tiny-add20", "lightgcn", "none") not in spec.runs()
    result = claims_study(out / "spec.yaml", work)
    assert (result.done, result.pending, result.failed) == (2, 0, [])
    data = json.loads((out / CLAIMS_JSON).read_text())
    [cell] = data["claims"][1]["cells"]
    assert cell["against"] == "lightgcn" and list(cell["delta"]) == [DETECTION_AUC]
    finals = {x: sorted((work / "final" / "tiny-add20" / x / "tce").iterdir()) for x in ("mf", "lightgcn")}
    a, b = paired_per_user(finals["mf"], finals["lightgcn"], DETECTION_AUC)
    assert cell["n_users"] == a.size > 50
    assert cell["p"][DETECTION_AUC] == paired_ttest(a, b)[1] and cell["delta"][DETECTION_AUC] == a.mean() - b.mean()
    assert cell["evidence"]["b"] == ["evidence/tiny-add20/lightgcn/tce/s1", "evidence/tiny-add20/lightgcn/tce/s2"]
    page = (tmp_path / "claims.md").read_text()
    assert "| tce on mf vs on lightgcn | ΔAUC " in page and "Kind `detects`: tce on mf vs on lightgcn." in page
    shutil.rmtree(work)
    assert check_claims(out) == 2
    tampered = json.loads((out / CLAIMS_JSON).read_text())
    tampered["claims"][1]["cells"][0]["delta"][DETECTION_AUC] += 0.01
    (out / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"cell d: tce on mf vs on lightgcn, tiny-add20: delta detection_auc"):
        check_claims(out)


def test_spec_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: claims spec not found"):
        load_claims_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: invalid YAML"):
        load_claims_spec(bad)


def test_the_budget_draws_the_same_grid_points_on_every_backbone(tiny):
    spec = parse_claims_spec(_raw(tiny, budget=3), "spec.yaml")
    picked = {model: [t["params"] for t in expand(tune_spec(spec, "tiny-add20", model, "tce"))]
              for model in ("mf", "lightgcn")}
    assert len(picked["mf"]) == 3 and picked["mf"] == picked["lightgcn"]
    assert picked["mf"] == [t["params"] for t in expand(tune_spec(spec, "tiny-add20", "mf", "tce"))]
    assert len(expand(tune_spec(spec, "tiny-add20", "mf", "none"))) == 1  # no grid: one trial
    assert len(expand(tune_spec(parse_claims_spec(_raw(tiny, budget=8)), "tiny-add20", "mf", "tce"))) == 4


def test_a_dataset_adds_its_own_fixed_settings_to_its_runs_only(tiny):
    """Per-dataset ``set`` (e.g. an epoch cap for a large dataset) comes after the spec's, on that dataset's
    trials alone, and the page lists it; the keys the spec decides are refused there too."""
    datasets = [{"name": "tiny-add20", "source": str(tiny), "noise": {"add": 0.2, "seed": 1},
                 "set": {"train.epochs": 1, "train.patience": 3}},
                {"name": "tiny-clean", "source": str(tiny)}]
    spec = parse_claims_spec(_raw(tiny, datasets=datasets, claims=_claim(datasets=["tiny-add20", "tiny-clean"])),
                             "spec.yaml")
    capped = expand(tune_spec(spec, "tiny-add20", "mf", "tce"))[0]["overrides"]
    plain = expand(tune_spec(spec, "tiny-clean", "mf", "tce"))[0]["overrides"]
    capped, plain = [tuple(o) for o in capped], [tuple(o) for o in plain]
    assert capped.index(("train.epochs", 2)) < capped.index(("train.epochs", 1)) and ("train.patience", 3) in capped
    assert ("train.epochs", 1) not in plain and ("train.patience", 3) not in plain
    with pytest.raises(ConfigError, match=r"datasets\[0\]\.set\.seed: the spec decides seed"):
        parse_claims_spec(_raw(tiny, datasets=[{"source": str(tiny), "set": {"seed": 3}}]), "spec.yaml")


def test_selection_reads_validation_only():
    """The best trial on validation is selected even where another is far better on test."""
    records = [{"name": "d/mf/tce/a", "params": {"x": 1}, "objective": 0.30, "valid": {"recall@20": 0.30},
                "test": {"recall@20": 0.90}},
               {"name": "d/mf/tce/b", "params": {"x": 2}, "objective": 0.50, "valid": {"recall@20": 0.50},
                "test": {"recall@20": 0.10}},
               {"name": "d/mf/tce/c", "params": {"x": 3}, "objective": None, "status": "failed"}]
    chosen = select(records)
    assert chosen == {"name": "b", "params": {"x": 2}, "objective": 0.50}
    # the choice cannot depend on test: changing every test value changes nothing
    assert select([{**r, "test": {"recall@20": 1.0 - i}} for i, r in enumerate(records)]) == chosen


# ------------------------------------------------------------ end to end
def test_claims_study_end_to_end_and_the_evidence_alone_reproduces_every_p(tmp_path, tiny):
    spec = _spec_file(tmp_path / "claims", _raw(tiny))
    work = tmp_path / "work"
    statuses = []
    result = claims_study(spec, work, on_result=lambda r: statuses.append(r["status"]))
    assert statuses == ["trained"] * 7  # tuning: none 1 + tce 2 (budget 2 of a 2 × 2 grid); final: 2 × 2 seeds
    assert (result.done, result.pending, result.failed) == (1, 0, [])
    page = (tmp_path / "claims.md").read_text()
    data = json.loads((tmp_path / "claims" / CLAIMS_JSON).read_text())
    assert result.page == tmp_path / "claims.md" and result.json == tmp_path / "claims" / CLAIMS_JSON

    # the budget is printed: trials run / planned per (backbone, method)
    assert "| mf | none | 1/1 |" in page and "| mf | tce | 2/2 |" in page
    assert RULE in page and "never select" in page
    [cell] = data["claims"][0]["cells"]
    assert cell["status"] == "done" and cell["verdict"] in ("confirmed", "refuted", "inconclusive")
    assert f"(p {cell['p']['recall@20']:.2g})" in page or f"(p {cell['p']['recall@20']:.1e})" in page

    # evidence: relative paths, small files, a selection made on validation only
    evidence = tmp_path / "claims" / "evidence" / "tiny-add20" / "mf"
    for side in ("a", "b"):
        assert len(cell["evidence"][side]) == 2
        for rel in cell["evidence"][side]:
            assert not Path(rel).is_absolute() and rel.startswith("evidence/tiny-add20/mf/")
            folder = tmp_path / "claims" / rel
            assert {p.name for p in folder.iterdir()} == {"per_user.npz", "config.yaml", "result.json"}
            assert sum(p.stat().st_size for p in folder.iterdir()) < 20_000
            assert str(tmp_path) not in (folder / "config.yaml").read_text()
            assert yaml.safe_load((folder / "config.yaml").read_text())["dataset"] == "tiny-add20"
    selection = json.loads((evidence / "tce" / "selection.json").read_text())
    assert selection["used"] == selection["planned"] == 2 and selection["grid_size"] == 4
    assert "test" not in json.dumps(selection)
    best = max(selection["trials"], key=lambda t: t["objective"])
    assert selection["selected"] == {k: best[k] for k in ("name", "params", "objective")} and yaml.safe_load(
        (evidence / "tce" / "s1" / "config.yaml").read_text())["denoiser_params"]["drop_rate"] == \
        best["params"]["denoiser_params.drop_rate"]
    # what the runs cost: each trial's and final run's seconds (summed over its epochs), per dataset on the page
    assert all(t["seconds"] > 0 for t in selection["trials"])
    [compute] = data["compute"]
    finals_seconds = sum(json.loads((tmp_path / "claims" / rel / "result.json").read_text())["seconds"]
                         for rel in cell["evidence"]["a"] + cell["evidence"]["b"])
    assert (compute["tuning_runs"], compute["final_runs"], compute["unmeasured"]) == (3, 4, 0)
    # where each final run ran is in its evidence; none of these on a GPU, so the table says nothing of one
    assert all(json.loads((tmp_path / "claims" / rel / "result.json").read_text())["device"] == "cpu"
               for rel in cell["evidence"]["a"])
    assert compute["final_runs_on_gpu"] == 0 and "on a GPU)" not in page.split("## Compute spent")[1].split("##")[0]
    assert compute["final_hours"] == pytest.approx(finals_seconds / 3600) and compute["tuning_hours"] > 0
    assert "## Compute spent" in page and "| tiny-add20 | 3 | " in page

    # the page's p is the paired test of the final run folders themselves
    finals = {m: sorted((work / "final" / "tiny-add20" / "mf" / m).iterdir()) for m in ("tce", "none")}
    a, b = paired_per_user(finals["tce"], finals["none"], "recall@20")
    assert cell["p"]["recall@20"] == paired_ttest(a, b)[1] and cell["delta"]["recall@20"] == a.mean() - b.mean()
    assert cell["ci"]["recall@20"] == list(mean_ci(a - b))
    # and the Δ at each seed alone: the same seed on both sides
    assert cell["seed_deltas"] == [pytest.approx(float(np.mean(x) - np.mean(y)), rel=1e-12) for x, y in (
        paired_per_user([fa], [fb], "recall@20") for fa, fb in zip(finals["tce"], finals["none"]))]
    low, high = cell["ci"]["recall@20"]
    assert f"ΔR@20 {cell['delta']['recall@20']:+.4f} [{low:+.4f}, {high:+.4f}] (p " in page

    # every run's test metrics: each user's value averaged over the seeds, then over users; the best in bold
    by_method = {r["method"]: r for r in data["results"]}
    assert set(by_method) == {"tce", "none"} and all(r["dataset"] == "tiny-add20" for r in data["results"])
    for method, folders in finals.items():
        files = [np.load(f / "per_user.npz") for f in folders]
        assert all(np.array_equal(f["users"], files[0]["users"]) for f in files)
        by_hand = np.mean([f["test_recall@20"] for f in files], axis=0).mean()
        assert by_method[method]["mean"]["recall@20"] == pytest.approx(by_hand, rel=1e-12)
        # the spread over seeds: the standard deviation (n - 1) of the per-seed means
        assert len(files) == 2 and by_method[method]["seed_sd"] == pytest.approx(
            abs(files[0]["test_recall@20"].mean() - files[1]["test_recall@20"].mean()) / np.sqrt(2), rel=1e-9)
        assert f" ±{by_method[method]['seed_sd']:.4f} (" in page
        assert by_method[method]["best_epochs"] == [json.loads((f / "result.json").read_text())["best_epoch"]
                                                    for f in folders]
        assert by_method[method]["n_users"] == files[0]["users"].size == cell["n_users"]
        assert by_method[method]["evidence"] == cell["evidence"]["a" if method == "tce" else "b"]
    results = page.split("## Test metrics")[1].split("##")[0]
    winner, loser = sorted(by_method, key=lambda m: -by_method[m]["mean"]["recall@20"])
    assert f"| mf | {winner} | **{by_method[winner]['mean']['recall@20']:.4f}** ±" in results
    assert f"| mf | {loser} | {by_method[loser]['mean']['recall@20']:.4f} ±" in results

    # each method against its backbone alone, a cell of its own (here the claim's own comparison), on the page
    [alone] = data["against_alone"]
    assert {k: alone[k] for k in ("method", "versus", "backbone", "dataset")} == {
        "method": "tce", "versus": "none", "backbone": "mf", "dataset": "tiny-add20"}
    assert {k: alone[k] for k in ("n_users", "delta", "p", "ci", "seed_deltas", "verdict", "evidence")} == {
        k: cell[k] for k in ("n_users", "delta", "p", "ci", "seed_deltas", "verdict", "evidence")}
    mark = {"confirmed": "▲", "refuted": "▼", "inconclusive": "·"}[cell["verdict"]]
    lifts = page.split("## Against the backbone alone")[1].split("##")[0]
    assert f"| mf | tce | {cell['delta']['recall@20']:+.4f} {mark} (p " in lifts and "| mf | none |" not in lifts
    counted = {"confirmed": "| tce | 1 | 0 | 0 |", "inconclusive": "| tce | 0 | 1 | 0 |",
               "refuted": "| tce | 0 | 0 | 1 |"}
    assert "| method | above (▲) | tie (·) | below (▼) |" in lifts and counted[cell["verdict"]] in lifts

    # running it again trains nothing and writes the same page
    statuses.clear()
    again = claims_study(spec, work, on_result=lambda r: statuses.append(r["status"]))
    assert statuses == [] and again.done == 1  # nothing reaches the runner: finished and committed trials are left out
    assert (tmp_path / "claims.md").read_text() == page

    # without any run folder, `report` recomputes every p from the committed files
    shutil.rmtree(work)
    assert check_claims(tmp_path / "claims") == 1
    out = CliRunner().invoke(app, ["report", str(tmp_path / "claims")])
    assert out.exit_code == 0, out.output
    assert ("1 cell(s) and 1 comparison(s) against the backbone alone recomputed from the evidence files: they "
            "match") in out.output
    significant = int(cell["verdict"] != "inconclusive")
    assert (f"robustness (the page's sections): {int(significant and cell['p']['recall@20'] < 0.05)} of "
            f"{significant} significant comparisons stay so") in out.output

    # the page stage alone, without the work folder, keeps the evidence and the page
    claims_study(spec, work, stage="page")
    assert (tmp_path / "claims.md").read_text() == page

    # a tampered p fails, naming the cell
    tampered = json.loads((tmp_path / "claims" / CLAIMS_JSON).read_text())
    tampered["claims"][0]["cells"][0]["p"]["recall@20"] *= 1.001
    (tmp_path / "claims" / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"cell tce-beats-none: tce vs none on mf, tiny-add20: p recall@20"):
        check_claims(tmp_path / "claims")
    tampered = json.loads(json.dumps(data))
    tampered["claims"][0]["cells"][0]["ci"]["ndcg@20"][1] += 1e-6
    (tmp_path / "claims" / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"tce vs none on mf, tiny-add20: ci ndcg@20 .* from the evidence"):
        check_claims(tmp_path / "claims")
    tampered = json.loads(json.dumps(data))
    tampered["claims"][0]["cells"][0]["seed_deltas"][1] += 1e-6
    (tmp_path / "claims" / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"tce vs none on mf, tiny-add20: per-seed Δ .* from the evidence"):
        check_claims(tmp_path / "claims")
    tampered = json.loads(json.dumps(data))
    tampered["against_alone"][0]["delta"]["recall@20"] += 1e-6
    (tmp_path / "claims" / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"against the backbone alone: tce vs none on mf, tiny-add20: delta "
                                             r"recall@20 .* from the evidence"):
        check_claims(tmp_path / "claims")
    tampered = json.loads(json.dumps(data))
    tampered["against_alone"] = []
    (tmp_path / "claims" / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"tce vs none on mf, tiny-add20 has evidence on both sides but is not "
                                             r"in against_alone"):
        check_claims(tmp_path / "claims")
    tampered = json.loads(json.dumps(data))
    tampered["results"][0]["best_epochs"][0] += 1
    (tmp_path / "claims" / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"test metrics of .* best epochs .* in the evidence"):
        check_claims(tmp_path / "claims")
    tampered = json.loads(json.dumps(data))
    tampered["results"][0]["seed_sd"] *= 1.01
    (tmp_path / "claims" / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"test metrics of .* seed spread .* from the evidence"):
        check_claims(tmp_path / "claims")
    tampered = json.loads(json.dumps(data))
    tampered["results"][0]["mean"]["ndcg@20"] += 1e-6
    (tmp_path / "claims" / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"test metrics of none on mf, tiny-add20: ndcg@20 .* from the evidence"):
        check_claims(tmp_path / "claims")
    (tmp_path / "claims" / CLAIMS_JSON).write_text(json.dumps(data))
    (tmp_path / "claims.md").write_text(page.replace("1/1", "2/1"))
    with pytest.raises(MMDenoiseError, match=r"claims\.md: not the rendering of .*claims\.json"):
        check_claims(tmp_path / "claims")


def test_the_committed_folder_carries_the_study_to_a_fresh_machine(tmp_path, tiny):
    """A session's work folder may not survive it: what the page stage commits (tuning.json for a sweep
    in progress, selection.json, the evidence) is enough to go on elsewhere without retraining."""
    spec = _spec_file(tmp_path / "claims", _raw(tiny))
    evidence = tmp_path / "claims" / "evidence" / "tiny-add20" / "mf"
    statuses = []

    def run(work, stage="all"):
        statuses.clear()
        return claims_study(spec, tmp_path / work, stage=stage, on_result=lambda r: statuses.append(r["status"]))

    def plan(work):
        [row] = claims_plan(spec, tmp_path / work)
        return row["tuning"], row["final"], row["waiting"]

    assert plan("one") == (3, 0, 4) and not (tmp_path / "one").exists()  # the plan trains and writes nothing
    run("one", "tune")
    assert statuses == ["trained"] * 3 and plan("one") == (0, 4, 0)
    # one T-CE trial did not finish on the first machine
    unfinished = sorted((tmp_path / "one" / "tune" / "tiny-add20" / "mf" / "tce").iterdir())[0]
    (unfinished / "result.json").unlink()
    run("one", "page")
    progress = json.loads((evidence / "tce" / "tuning.json").read_text())
    assert progress["planned"] == 2 and len(progress["trials"]) == 1 and progress["trials"][0]["settings"]
    assert progress["trials"][0]["name"] != unfinished.name
    assert (evidence / "none" / "selection.json").exists() and not (evidence / "tce" / "selection.json").exists()

    # a fresh machine trains only the unfinished trial, then the finals; the sweep's record becomes selection.json
    shutil.rmtree(tmp_path / "one")
    assert plan("two") == (1, 2, 2)  # none's finals can run; T-CE's wait for its last trial
    # the hours left: T-CE's last trial as long as its measured one, none's two finals as its trials (median)
    none_seconds = [t["seconds"] for t in json.loads((evidence / "none" / "selection.json").read_text())["trials"]]
    [row] = claims_plan(spec, tmp_path / "two")
    assert row["unestimated"] == 0 and len(none_seconds) == 1
    assert row["hours"] == pytest.approx((progress["trials"][0]["seconds"] + 2 * none_seconds[0]) / 3600)
    assert list(row["backbones"]) == ["mf"] and row["backbones"]["mf"]["runs"] == 3
    assert row["backbones"]["mf"]["hours"] == pytest.approx(row["hours"])
    out = CliRunner().invoke(app, ["study", "claims", "--spec", str(spec), "--work", str(tmp_path / "two"),
                                   "--stage", "plan"])
    assert out.exit_code == 0 and f"| tiny-add20 | 1 | 2 | 2 | 0 | {row['hours']:.1f} |" in out.output, out.output
    assert f"| tiny-add20 | mf | 3 | {row['hours']:.1f} |" in out.output, out.output
    none_hours = row["backbones"]["mf"]["methods"]["none"]["hours"]
    assert none_hours == pytest.approx(2 * none_seconds[0] / 3600)
    assert f"| tiny-add20 | mf | none | 2 | {none_hours:.1f} |" in out.output, out.output
    result = run("two")
    assert statuses == ["trained"] * 5 and result.done == 1
    assert not (evidence / "tce" / "tuning.json").exists()
    assert len(json.loads((evidence / "tce" / "selection.json").read_text())["trials"]) == 2
    page = (tmp_path / "claims.md").read_text()

    # a third machine trains nothing and writes the same page
    shutil.rmtree(tmp_path / "two")
    assert plan("three") == (0, 0, 0)
    assert run("three").done == 1 and statuses == []
    assert (tmp_path / "claims.md").read_text() == page.replace("/two`", "/three`")  # the command names its work

    # committed records of other settings are not reused: the changed spec tunes and trains again
    _spec_file(tmp_path / "claims", _raw(tiny, set={"train.epochs": 3}))
    run("four")
    assert statuses == ["trained"] * 7
    assert yaml.safe_load((evidence / "tce" / "s1" / "config.yaml").read_text())["train"]["epochs"] == 3


def test_the_hours_left_come_from_measured_runs_scaled_within_a_backbone():
    from mmdenoise.experiments.claims import run_estimate
    measured = {("a", "mf", "none"): [10.0, 30.0, 20.0], ("a", "mf", "tce"): [40.0], ("a", "vbpr", "none"): [7.0],
                ("b", "vbpr", "none"): [500.0],
                ("c", "mf", "none"): [5.0], ("c", "mf", "tce"): [10.0], ("c", "mf", "guider"): [30.0],
                ("c", "vbpr", "none"): [1.0],
                ("e", "mf", "none"): [1.0], ("e", "mf", "guider"): [100.0]}
    assert run_estimate(measured, ("a", "mf", "none")) == 20.0                 # its own runs' median
    # GUIDER on mf was measured on c and e; c shares two mf methods with a (a's take 20/5 = 40/10 = 4
    # times c's), e one (20 times): c's ratio is used, and VBPR's (7 times) plays no part
    assert run_estimate(measured, ("a", "mf", "guider")) == pytest.approx(120.0)
    # no other VBPR + T-CE run to scale, so the median of b's VBPR runs; none on MF at b
    assert run_estimate(measured, ("b", "vbpr", "tce")) == 500.0
    assert run_estimate(measured, ("b", "mf", "none")) is None                 # no MF run on b to scale by
    assert run_estimate({}, ("a", "mf", "none")) is None


def test_the_runs_started_within_hours_fit_in_them_at_each_worker():
    from mmdenoise.experiments.claims import fit_in_hours
    hour = 3600.0
    # one worker, 2 hours: 1 h ends at 1 h; 2 h would end at 3 h (left); 0.5 h ends at 1.5 h; 1 h at 2.5 h (left)
    assert fit_in_hours([hour, 2 * hour, 0.5 * hour, hour], 2) == [True, False, True, False]
    # two workers: 1 h on one (free at 1 h), 2 h on the other (ends at 2 h exactly: fits), 0.5 h after
    # the first (1.5 h), 1 h after that (2.5 h: left)
    assert fit_in_hours([hour, 2 * hour, 0.5 * hour, hour], 2, workers=2) == [True, True, True, False]
    # a run of unknown length starts while a worker is free before the end, and keeps it to the end
    assert fit_in_hours([None, 0.1 * hour], 2) == [True, False]
    assert fit_in_hours([0.5 * hour, None, 0.1 * hour], 2, workers=2) == [True, True, True]
    assert fit_in_hours([3 * hour, None], 2) == [False, True]
    assert fit_in_hours([2 * hour, 0.0, 0.1 * hour], 2) == [True, True, False]  # a finished run takes no time
    assert fit_in_hours([], 1) == []
    with pytest.raises(ConfigError, match=r"workers must be an integer >= 1, got 0"):
        fit_in_hours([hour], 2, workers=0)


def test_a_partial_run_needs_its_estimate_less_what_it_spent(tmp_path, tiny):
    from mmdenoise.experiments.claims import run_seconds, seconds_left
    spec = _spec_file(tmp_path / "claims", _raw(tiny))
    claims_study(spec, tmp_path / "work", stage="tune", methods="none")
    [folder] = (tmp_path / "work" / "tune" / "tiny-add20" / "mf" / "none").iterdir()
    trial, run = json.loads((folder / "trial.json").read_text()), ("tiny-add20", "mf", "none")
    assert seconds_left({}, run, folder, trial) == 0.0                      # finished: nothing left
    (folder / "result.json").unlink()                                       # stopped after its last checkpoint
    spent = run_seconds(folder)
    assert spent > 0 and seconds_left({run: [spent + 5.0]}, run, folder, trial) == pytest.approx(5.0)
    assert seconds_left({run: [spent / 2]}, run, folder, trial) is None     # past its estimate: not known
    assert seconds_left({}, run, folder, trial) is None                     # nothing measured


def test_hours_starts_only_the_runs_expected_to_end_within_them(tmp_path, tiny, caplog):
    """``--hours`` (a session or job with a time limit): a run starts when its estimate from the committed
    runs fits in the hours left; the others wait for a later call, which trains them."""
    spec = _spec_file(tmp_path / "claims", _raw(tiny))
    names = []

    def run(stage, hours=None):
        names.clear()
        return claims_study(spec, tmp_path / "work", stage=stage, hours=hours,
                            on_result=lambda r: names.append(r["name"]))

    # nothing measured yet: the first trial starts alone and keeps the one worker (a first wave); once it
    # has finished in the work folder, its time estimates the other two (any method on MF here), which fit
    with caplog.at_level(logging.INFO, logger="mmdenoise"):
        result = run("tune", hours=100)
    assert len(names) == 3 and result.deferred == 0
    assert re.findall(r"(\d+) runs? in \S+, 1 at a time", caplog.text) == ["1", "2"]  # the two waves
    from mmdenoise.experiments.claims.study import measured_seconds
    out_dir, work = tmp_path / "claims", tmp_path / "work"
    assert measured_seconds(out_dir) == {}
    assert {k: len(v) for k, v in measured_seconds(out_dir, work).items()} == {("tiny-add20", "mf", "none"): 1,
                                                                               ("tiny-add20", "mf", "tce"): 2}
    run("page")  # commits selection.json, with each trial's measured seconds
    assert measured_seconds(out_dir, work) == measured_seconds(out_dir) != {}  # a run counts once
    # the finals' estimates (their sweep's trials, a fraction of a second each) exceed 3.6 ms
    out = CliRunner().invoke(app, ["study", "claims", "--spec", str(spec), "--work", str(tmp_path / "work"),
                                   "--stage", "final", "--hours", "1e-6"])
    assert out.exit_code == 0, out.output
    assert "4 run(s) not started: expected to end after --hours 1e-06; rerun later" in out.output
    assert not list((tmp_path / "work").glob("final/**/result.json"))
    result = run("final", hours=100)
    assert len(names) == 4 and result.deferred == 0
    with pytest.raises(ConfigError, match=r"--hours: expected a number of hours > 0, got 0"):
        run("final", hours=0)
    with pytest.raises(ConfigError, match=r"--hours: the page stage trains nothing"):
        run("page", hours=1)
    out = CliRunner().invoke(app, ["study", "claims", "--spec", str(spec), "--work", str(tmp_path / "work"),
                                   "--stage", "plan", "--hours", "1"])
    assert isinstance(out.exception, ConfigError) and "--hours: the plan stage trains nothing" in str(out.exception)


@pytest.mark.parametrize("cut, message", [
    ({"lightgcn": ["tce"]}, r"datasets\[1\]\.cut: unknown backbone 'lightgcn'; backbones: mf"),
    ({"mf": ["ce"]}, r"datasets\[1\]\.cut\.mf: unknown method 'ce' \(did you mean 'tce'\?\); methods: none, tce"),
    (["mf"], r"datasets\[1\]\.cut: expected a mapping backbone -> a list of methods or 'all', got \['mf'\]"),
])
def test_cut_errors_name_the_file_the_dataset_and_the_value(tmp_path, tiny, cut, message):
    raw = _raw(tiny, datasets=[{"name": "tiny-add20", "source": str(tiny), "noise": {"add": 0.2, "seed": 1}},
                               {"name": "tiny", "source": str(tiny), "cut": cut}])
    with pytest.raises(ConfigError, match=message):
        load_claims_spec(_spec_file(tmp_path, raw))


def test_cut_all_is_every_method_that_runs_on_the_backbone(tmp_path, tiny):
    """``all`` leaves out the sequential models (they never run on a general backbone), naming one is an
    error, and the page says "every method" rather than listing them."""
    from mmdenoise.experiments.claims.page import _cut_text

    def spec_with(cut):
        raw = _raw(tiny, datasets=[{"name": "tiny-add20", "source": str(tiny), "noise": {"add": 0.2, "seed": 1}},
                                   {"name": "tiny", "source": str(tiny), "cut": cut}])
        raw["methods"]["base"] = {"model": "base"}
        return load_claims_spec(_spec_file(tmp_path, raw))

    assert spec_with({"mf": "all"}).datasets["tiny"].cut == (("mf", "none"), ("mf", "tce"))
    with pytest.raises(ConfigError, match=r"datasets\[1\]\.cut\.mf: method 'base' is a sequential model, so it "
                                          r"never runs on backbone 'mf'; methods that do: none, tce"):
        spec_with({"mf": ["tce", "base"]})
    methods = [{"name": "none"}, {"name": "tce"}, {"name": "base", "model": "base"}]
    assert _cut_text([["mf", "none"], ["mf", "tce"]], methods) == "mf: every method"
    assert _cut_text([["mf", "tce"], ["vbpr", "none"], ["vbpr", "tce"]], methods) == "mf: tce; vbpr: every method"
    assert _cut_text(None, methods) == "–"


def test_a_cut_pair_is_not_run_and_its_cells_say_cut(tmp_path, tiny):
    raw = _raw(tiny, datasets=[{"name": "tiny-add20", "source": str(tiny), "noise": {"add": 0.2, "seed": 1}},
                               {"name": "tiny", "source": str(tiny), "cut": {"mf": ["tce"]}}])
    spec_path = _spec_file(tmp_path / "claims", raw)
    spec = load_claims_spec(spec_path)
    assert ("tiny", "mf", "none") in spec.runs() and ("tiny", "mf", "tce") not in spec.runs()
    assert ("tiny", "mf", "tce") not in spec.tuned_runs()
    result = claims_study(spec_path, tmp_path / "work", stage="page")
    assert (result.done, result.pending) == (0, 1)  # the cut cell is not pending
    data = json.loads((tmp_path / "claims" / CLAIMS_JSON).read_text())
    assert [c["status"] for c in data["claims"][0]["cells"]] == ["pending", "cut"]
    page = (tmp_path / "claims.md").read_text()
    assert "| [tce-beats-none](#tce-beats-none) | pending (1 pending) | cut (1 cut) |" in page
    assert "| tce vs none on mf | pending | cut |" in page and "| – | – |\n| tiny | " in page
    assert page.count("| mf: tce |") == 1 and "cuts (backbone, method) pairs" in page
    assert "| mf | tce | pending | – |" in page.split("## Against the backbone alone")[1]  # cut: no comparison
    assert check_claims(tmp_path / "claims") == 0


def test_a_datasets_why_is_said_under_the_datasets_table_and_changes_no_run(tmp_path, tiny):
    datasets = [{"name": "tiny-add20", "source": str(tiny), "noise": {"add": 0.2, "seed": 1}},
                {"name": "tiny", "source": str(tiny), "cut": {"mf": ["tce"]}}]
    plain = load_claims_spec(_spec_file(tmp_path / "a", _raw(tiny, datasets=datasets)))
    datasets[1]["why"] = "one seed:\n  T-CE   costs too much here"
    spec_path = _spec_file(tmp_path / "claims", _raw(tiny, datasets=datasets))
    spec = load_claims_spec(spec_path)
    assert spec.datasets["tiny"].why == "one seed: T-CE costs too much here"  # one line, spaces collapsed
    assert spec.runs() == plain.runs() and spec.tuned_runs() == plain.tuned_runs()
    claims_study(spec_path, tmp_path / "work", stage="page")
    data = json.loads((tmp_path / "claims" / CLAIMS_JSON).read_text())
    assert [d.get("why") for d in data["datasets"]] == [None, "one seed: T-CE costs too much here"]
    page = (tmp_path / "claims.md").read_text()
    assert "(the datasets table; why, under it)" in page
    assert "|\n\n- **tiny**: one seed: T-CE costs too much here\n\n| method |" in page
    assert check_claims(tmp_path / "claims") == 0


def test_evidence_of_a_pair_cut_later_is_removed_and_the_cell_says_cut(tmp_path, tiny):
    spec_path = _spec_file(tmp_path / "claims", _raw(tiny))
    claims_study(spec_path, tmp_path / "work")
    evidence = tmp_path / "claims" / "evidence" / "tiny-add20" / "mf"
    assert (evidence / "tce" / "s1" / "per_user.npz").is_file() and (evidence / "none" / "selection.json").is_file()
    stale = tmp_path / "claims" / "evidence" / "gone" / "mf" / "none"
    stale.mkdir(parents=True)
    (stale / "selection.json").write_text("{}")
    raw = _raw(tiny)
    raw["datasets"][0]["cut"] = {"mf": ["tce"]}
    _spec_file(tmp_path / "claims", raw)
    result = claims_study(spec_path, tmp_path / "work", stage="page")
    assert (result.done, result.pending) == (0, 0)
    assert not (evidence / "tce").exists() and (evidence / "none" / "s2" / "per_user.npz").is_file()
    assert not (tmp_path / "claims" / "evidence" / "gone").exists()
    assert check_claims(tmp_path / "claims") == 0


def test_a_claim_verdict_leaves_out_its_cut_cells():
    from mmdenoise.experiments.claims import claim_verdict
    assert claim_verdict(["confirmed", "cut"]) == "confirmed"
    assert claim_verdict(["cut", "cut"]) == "cut"
    assert claim_verdict(["refuted", "pending", "cut"]) == "refuted"
    assert claim_verdict(["inconclusive", "cut", "confirmed"]) == "inconclusive"


def test_a_p_value_that_underflows_prints_as_a_bound_not_zero():
    from mmdenoise.eval.significance import p_text
    assert [p_text(p) for p in (0.0, 3e-310, 2.4e-279, 0.00082, 0.25)] == \
        ["< 2e-308", "< 2e-308", "2.4e-279", "0.00082", "0.25"]


def test_backbones_and_methods_train_only_the_named_runs(tmp_path, tiny):
    raw = _raw(tiny, claims=[{**_raw(tiny)["claims"][0], "backbones": ["mf", "lightgcn"]}])
    spec = _spec_file(tmp_path / "claims", raw)
    statuses = []
    claims_study(spec, tmp_path / "work", stage="tune", backbones="mf", on_result=lambda r: statuses.append(r["name"]))
    assert len(statuses) == 3 and all(name.startswith("tiny-add20/mf/") for name in statuses)
    assert not (tmp_path / "work" / "tune" / "tiny-add20" / "lightgcn").exists()
    [mf] = claims_plan(spec, tmp_path / "work", backbones="mf")
    [both] = claims_plan(spec, tmp_path / "work")
    assert (mf["tuning"], mf["final"], both["tuning"], both["final"]) == (0, 4, 3, 4)
    # the runs left by backbone: mf's four finals; lightgcn's three trials (its finals wait on them)
    assert {b: part["runs"] for b, part in both["backbones"].items()} == {"mf": 4, "lightgcn": 3}
    assert {b: part["runs"] for b, part in mf["backbones"].items()} == {"mf": 4}
    # and by method: mf's finals two seeds each; lightgcn's trials, none's one (no grid) and T-CE's two
    assert {(b, m): v["runs"] for b, part in both["backbones"].items() for m, v in part["methods"].items()} \
        == {("mf", "none"): 2, ("mf", "tce"): 2, ("lightgcn", "none"): 1, ("lightgcn", "tce"): 2}
    with pytest.raises(ConfigError, match=r"--backbones: unknown backbone 'vbpr'; backbones: mf, lightgcn"):
        claims_study(spec, tmp_path / "work", stage="tune", backbones="vbpr")
    # --methods: lightgcn's two T-CE trials are left to tune, mf's two T-CE finals to run
    [tce] = claims_plan(spec, tmp_path / "work", methods="tce")
    assert (tce["tuning"], tce["final"], tce["waiting"]) == (2, 2, 2)
    statuses.clear()
    claims_study(spec, tmp_path / "work", stage="final", methods="none", on_result=lambda r: statuses.append(r["name"]))
    assert sorted(n.split("/")[:3] for n in statuses) == [["tiny-add20", "mf", "none"]] * 2
    with pytest.raises(ConfigError, match=r"--methods: unknown method 'guider'; methods: none, tce"):
        claims_plan(spec, tmp_path / "work", methods="guider")


def test_cells_without_evidence_are_pending_and_the_page_stage_trains_nothing(tmp_path, tiny):
    raw = _raw(tiny, datasets=[{"name": "tiny-add20", "source": str(tiny), "noise": {"add": 0.2, "seed": 1}},
                               {"name": "tiny", "source": str(tiny)}])
    spec = _spec_file(tmp_path / "claims", raw)
    out = CliRunner().invoke(app, ["study", "claims", "--spec", str(spec), "--work", str(tmp_path / "work"),
                                   "--stage", "page"])
    assert out.exit_code == 0, out.output
    assert "0 cell(s) done, 2 pending" in out.output and not (tmp_path / "work").exists()
    data = json.loads((tmp_path / "claims" / CLAIMS_JSON).read_text())
    assert [c["status"] for c in data["claims"][0]["cells"]] == ["pending", "pending"]
    page = (tmp_path / "claims.md").read_text()
    assert "| tce vs none on mf | pending | pending |" in page and "| mf | tce | 0/2 | 0/2 |" in page
    assert "| [tce-beats-none](#tce-beats-none) | pending (1 pending) | pending (1 pending) |" in page
    # against the backbone alone: pending too, and nothing to count yet
    lifts = page.split("## Against the backbone alone")[1].split("##")[0]
    assert data["against_alone"] == [] and "| mf | tce | pending | pending |" in lifts and "above (▲)" not in lifts
    assert check_claims(tmp_path / "claims") == 0


def test_the_evidence_files_are_not_ignored_by_git():
    """Run folders' per_user.npz files under docs/results are ignored; the claims evidence must not be."""
    import subprocess
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    evidence = "docs/results/claims/evidence/ml-100k-add20/lightgcn/none/s1/per_user.npz"
    ignored = subprocess.run(["git", "check-ignore", "-q", evidence], cwd=root)
    assert ignored.returncode == 1, f"{evidence} is ignored by .gitignore"
    assert subprocess.run(["git", "check-ignore", "-q", "studies/claims/final/x/result.json"], cwd=root).returncode == 0


def test_the_committed_benchmark_needs_no_tuning_on_a_fresh_machine(tmp_path):
    """Every committed tuning record still matches its trial (name and settings key): a setting added to
    the code since must not turn the benchmark's finished sweeps into trials to run again."""
    folder = Path(__file__).resolve().parents[2] / "docs" / "results" / "claims"
    rows = claims_plan(folder / "spec.yaml", tmp_path / "empty")
    assert [(r["dataset"], r["tuning"], r["waiting"]) for r in rows if r["tuning"] or r["waiting"]] == []


def test_the_committed_spec_is_valid_and_its_page_checks():
    """docs/results/claims: the spec loads (every grid resolves on its backbones) and every committed cell
    reproduces from the committed evidence; the page is the rendering of claims.json."""
    folder = Path(__file__).resolve().parents[2] / "docs" / "results" / "claims"
    spec = load_claims_spec(folder / "spec.yaml")
    assert {"guider", "damrs", "tce", "rce", "wbpr", "bod", "none"} <= set(spec.methods)
    assert list(spec.datasets) == ["ml-100k-add20", "ml-1m-add20", "book-crossing-add20", "synth-baby-add20",
                                   "ml-100k-swap20-text", "ml-1m-swap20-text", "book-crossing-swap20-text",
                                   "synth-baby-swap20-text", "ml-100k-seq", "ml-1m-seq", "synth-seq-small"]
    # the large datasets take ml-100k-add20's (or ml-100k-seq's) selections and run one seed (the spec says why)
    assert [(d.tune_from, spec.seeds_of(d.name)) for d in spec.datasets.values()] == [
        (None, [1, 2, 3]), ("ml-100k-add20", [1]), ("ml-100k-add20", [1]), ("ml-100k-add20", [1]),
        ("ml-100k-add20", [1, 2, 3]), ("ml-100k-add20", [1]), ("ml-100k-add20", [1]), ("ml-100k-add20", [1]),
        (None, [1, 2, 3]), ("ml-100k-seq", [1]), ("ml-100k-seq", [1, 2, 3])]
    # and ml-1m and book-crossing cut their costliest pairs, the one-seed datasets DA-MRS without g on VBPR
    # (it trains as DIIG + AUI); nothing else is cut
    assert {d.name: {x for x, _ in d.cut} for d in spec.datasets.values() if d.cut} == {
        "ml-1m-add20": {"lightgcn", "vbpr"}, "book-crossing-add20": {"lightgcn", "freedom", "vbpr"},
        "synth-baby-add20": {"vbpr"}, "ml-1m-swap20-text": {"lightgcn"}, "book-crossing-swap20-text": {"lightgcn"}}
    assert all({m for x, m in spec.datasets[d].cut if x == "vbpr"} == {"damrs-g"}
               for d in ("ml-1m-add20", "book-crossing-add20", "synth-baby-add20"))
    # every claim but Demure's (no third real dataset with timestamps; localisation needs planted points
    # of interest) has three real datasets, and every claim a synthetic one
    real = {"ml-100k", "ml-1m", "book-crossing"}
    for claim in spec.claims:
        sources = {spec.datasets[d].source for d in claim.datasets}
        assert len(sources & real) == (2 if claim.id.startswith("demure") and claim.id != "demure-localises" else
                                       0 if claim.id == "demure-localises" else 3), claim.id
        assert sources - real, claim.id
    assert all(("lightgcn", m) not in spec.datasets[d].cut for d in ("ml-1m-add20", "book-crossing-add20")
               for m in ("none", "tce"))  # the detection claim's ID side stays
    assert {run[0] for run in spec.tuned_runs()} == {"ml-100k-add20", "ml-100k-seq"}
    # the ablations (the papers' Tables 3-4) run their full method's selection: no tuning of their own
    ablations = {m.name: m.selection_of for m in spec.methods.values() if m.selection_of}
    assert set(ablations.values()) == {"guider", "damrs"} and len(ablations) == 15  # damrs-fg: the other reading
    assert {run[2] for run in spec.tuned_runs()} == {"none", "tce", "rce", "wbpr", "bod", "guider", "damrs", "base",
                                                     "youtubednn", "gru4rec", "comirec-sa", "demure"}
    # Demure's claims: sequential models on three user splits (one on ml-1m), localisation on planted data only
    assert len(spec.replicates("ml-100k-seq", "sequential")) == 9
    assert len(spec.replicates("ml-1m-seq", "sequential")) == 1
    assert {run[0] for run in spec.runs() if run[1] == "sequential"} == {"ml-100k-seq", "ml-1m-seq", "synth-seq-small"}
    check_claims(folder)
    # the README opens with the page's verdicts and its count of cells, as `make claims-readme` writes them
    readme = (folder.parents[2] / "README.md").read_text(encoding="utf-8")
    data = json.loads((folder / CLAIMS_JSON).read_text())
    written = readme_with_verdicts(readme, data, "docs/results/claims.md")
    assert written == readme, "README.md's verdicts are stale: run `make claims-readme`"
    # and its robustness bullets count what the page's sections count
    from mmdenoise.experiments.claims.screens import claims_moved, fdr_verdict, seed_flagged
    moved = len(claims_moved(data, fdr_verdict(data)))
    words = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    said = " ".join(readme.split())  # the prose wraps anywhere
    assert f"(Benjamini–Hochberg) moves {words[moved]} verdict{'s' if moved != 1 else ''}" in said, moved
    checked, flagged = seed_flagged(data)
    assert f"{len(flagged)} of the {len(checked)} significant comparisons have |Δ| within twice" in said


def test_the_multiple_comparisons_section_adjusts_every_distinct_comparison_together():
    def cell(method, dataset, delta, p, verdict):
        return {"method": method, "versus": "none", "backbone": "mf", "dataset": dataset, "status": "done",
                "delta": {"recall@20": delta, "ndcg@20": 0.0}, "p": {"recall@20": p, "ndcg@20": 0.9},
                "verdict": verdict}
    # BH over p = 0.01, 0.04, 0.5 (m = 3): adjusted 0.03, 0.06, 0.5; the comparison "a" on d1 counts once
    a, b, c = cell("a", "d1", 0.02, 0.01, "confirmed"), cell("b", "d1", -0.01, 0.04, "refuted"), \
        cell("c", "d2", 0.001, 0.5, "inconclusive")
    data = {"alpha": 0.05, "claims": [{"id": "one", "cells": [a, b, c]}, {"id": "two", "cells": [dict(a)]},
                                      {"id": "three", "cells": [{**a, "dataset": "d3", "status": "pending"}]}]}
    text = "\n".join(multiplicity_lines(data))
    assert "Of the 3 distinct comparisons with evidence, 2 are significant at p < 0.05" in text
    assert "about 0.2 would be by chance" in text and "1 stay significant; this one becomes inconclusive" in text
    assert "| b vs none on mf | d1 | -0.0100 | 0.04 | 0.06 | refuted |" in text
    assert "Claims whose verdict on a dataset would change: one on d1: refuted → inconclusive." in text
    data["claims"][0]["cells"][1] = cell("b", "d1", -0.01, 0.001, "refuted")
    assert "every verdict stands." in "\n".join(multiplicity_lines(data))
    assert multiplicity_lines({"alpha": 0.05, "claims": data["claims"][2:]}) == []


def test_the_seeds_section_lists_significant_cells_within_their_seed_spread():
    def cell(method, delta, p, verdict, deltas):
        return {"method": method, "versus": "none", "backbone": "mf", "dataset": "d", "status": "done",
                "delta": {"recall@20": delta}, "p": {"recall@20": p}, "verdict": verdict, "seed_deltas": deltas}
    # a: per-seed Δ 0.01, 0.05, 0.06 → mean 0.04, sd 0.0265, standard error 0.0153: 0.04 < 0.0306 is false;
    # b: -0.10, 0.0, 0.04 → sd 0.0721, error 0.0416: |-0.02| < 0.0833 is flagged; the tie and the one-seed
    # cell are not counted
    cells = [cell("a", 0.04, 0.001, "confirmed", [0.01, 0.05, 0.06]),
             cell("b", -0.02, 0.001, "refuted", [-0.10, 0.0, 0.04]),
             cell("c", 0.0, 0.9, "inconclusive", [0.1, -0.1, 0.0]), cell("e", 0.04, 0.001, "confirmed", [0.04])]
    data = {"datasets": [{"name": "d", "seeds": [1, 2, 3]}, {"name": "one", "seeds": [1]}],
            "protocol": {"seeds": [1, 2, 3]}, "claims": [{"id": "x", "cells": cells}]}
    text = "\n".join(seed_lines(data))
    assert "Datasets run with one seed (one) have none" in text
    assert "Of the 2 significant cells with several seeds, 1 has |Δ| below twice that error" in text
    assert "| b vs none on mf | d | -0.0200 | 0.001 | -0.1000, +0.0000, +0.0400 | 1 of 3 | 0.0416 | refuted |" in text
    assert "| a vs" not in text
    assert "Claims whose verdict on a dataset would change: x on d: refuted → inconclusive." in text
    cells[1]["seed_deltas"] = [-0.02, -0.021, -0.019]
    assert "none has |Δ| below twice that error." in "\n".join(seed_lines(data))
    data["claims"][0]["cells"] = cells[2:]
    assert seed_lines(data) == []


def test_the_early_stops_section_lists_runs_best_in_their_first_epochs_and_the_cells_using_them():
    def result(method, epochs):
        return {"dataset": "d", "backbone": "mf", "method": method, "mean": {"recall@20": 0.25},
                "best_epochs": epochs, "evidence": [f"evidence/d/mf/{method}/s{i + 1}" for i in range(len(epochs))]}
    cell = {"method": "a", "versus": "none", "backbone": "mf", "dataset": "d", "status": "done",
            "verdict": "refuted"}
    data = {"results": [result("a", [0, 40, 2]), result("none", [3, 50, 61]), result("b", [30, 31, 32])],
            "claims": [{"id": "x", "cells": [cell, {**cell, "method": "b"}, {**cell, "method": "c",
                                                                             "status": "pending"}]}]}
    text = "\n".join(early_stop_lines(data))
    assert "2 of the 9 final runs behind the page reached their best validation R@20 in one of their first 3" in text
    assert "| d | mf | a | s1 (0), s3 (2) | 0.2500 |" in text and "| d | mf | none |" not in text
    assert "Cells that use them: x: a vs none on mf, d (refuted)." in text
    data["results"][0]["best_epochs"] = [3, 4, 5]
    assert early_stop_lines(data) == []


def test_report_sums_up_the_screens_in_one_line():
    from mmdenoise.experiments.claims.screens import screens_summary

    def cell(method, p, verdict, deltas):
        return {"method": method, "versus": "none", "backbone": "mf", "dataset": "d", "status": "done",
                "delta": {"recall@20": 0.01 if verdict == "confirmed" else 0.0}, "p": {"recall@20": p},
                "verdict": verdict, "seed_deltas": deltas}
    # BH over 0.001, 0.04, 0.5 (m = 3): 0.003, 0.06, 0.5, so one of the two significant ones stays; "b"'s
    # per-seed Δs straddle 0 (flagged), "a"'s agree; one run's seed s2 was best at epoch 1
    data = {"alpha": 0.05, "claims": [{"id": "x", "cells": [
                cell("a", 0.001, "confirmed", [0.01, 0.011, 0.009]), cell("b", 0.04, "confirmed", [0.05, -0.04, 0.02]),
                cell("c", 0.5, "inconclusive", [0.0, 0.0, 0.0])]}],
            "results": [{"dataset": "d", "backbone": "mf", "method": "a", "best_epochs": [9, 1, 12],
                         "evidence": ["e/s1", "e/s2", "e/s3"]}]}
    assert screens_summary(data) == (
        "1 of 2 significant comparisons stay so with every p adjusted together (Benjamini–Hochberg); 1 of the 2 "
        "with several seeds have |Δ| within twice the standard error of their per-seed Δs; 1 final run(s) "
        "stopped early on a starting plateau")


def test_the_summary_has_a_column_per_real_source_and_one_for_the_synthetic_presets():
    names = iter(f"m{i}" for i in range(100))

    def cell(dataset, status, verdict=None, p=None, deltas=()):
        sign = {"confirmed": 1, "refuted": -1}.get(verdict, 0)
        p = p if p is not None else 1e-6 if sign else 0.5
        return {"method": next(names), "versus": "none", "backbone": "mf", "dataset": dataset, "status": status,
                **({"verdict": verdict, "delta": {"recall@20": 0.01 * sign}, "p": {"recall@20": p},
                    "seed_deltas": list(deltas)} if verdict else {})}
    data = {"alpha": 0.05, "datasets": [{"name": n, "source": s} for n, s in [
                ("a-add", "ml-100k"), ("s-add", "synth-baby"), ("a-swap", "ml-100k"), ("seq", "synth-seq-small"),
                ("b-add", "book-crossing")]],
            "claims": [{"id": "one", "claim": "X beats Y", "cells": [
                            cell("a-add", "done", "confirmed"), cell("a-add", "done", "refuted"),
                            cell("a-add", "done", "inconclusive"), cell("a-add", "cut"),
                            cell("s-add", "done", "confirmed"), cell("s-add", "done", "confirmed"),
                            cell("b-add", "pending"), cell("b-add", "done", "confirmed")]},
                       {"id": "two", "claim": "Z", "cells": [cell("a-swap", "done", "inconclusive"),
                                                            cell("seq", "cut"), cell("s-add", "pending")]}]}
    assert summary_table(data, "p.md").splitlines() == [
        "| claim | ml-100k | book-crossing | synthetic |",
        "|---|---|---|---|",
        "| [X beats Y](p.md#one) | refuted (1 hold, 1 fail, 1 tie) | pending (1 hold, 1 to run) | "
        "confirmed (2 hold) |",
        "| [Z](p.md#two) | inconclusive | – | pending / cut |"]
    # the refuting cell at p = 0.04 fails the adjustment over 7 comparisons (†); a synthetic cell whose
    # per-seed Δs straddle 0 fails the seeds screen (‡)
    data["claims"][0]["cells"][1] = cell("a-add", "done", "refuted", p=0.04)
    data["claims"][0]["cells"][4] = cell("s-add", "done", "confirmed", deltas=[0.05, -0.04, 0.02])
    lines = summary_table(data, "p.md").splitlines()
    assert lines[2] == ("| [X beats Y](p.md#one) | refuted† (1 hold, 1 fail, 1 tie) | pending (1 hold, 1 to run) | "
                        "confirmed‡ (2 hold) |")
    assert lines[-1] == ("† the verdict changes when every p-value is adjusted for the number of comparisons; ‡ it "
                         "changes when the comparisons within their seed-to-seed variation count as ties (the "
                         "page's robustness sections).")


def test_the_committed_guider_plus_study_is_valid_and_its_page_checks():
    """docs/results/guider-plus (issue 20): guider+ against FREEDOM and VBPR alone and with T-CE, each
    tuned with the same budget; its page is the rendering of its claims.json and every committed cell
    reproduces from the committed evidence."""
    folder = Path(__file__).resolve().parents[2] / "docs" / "results" / "guider-plus"
    spec = load_claims_spec(folder / "spec.yaml")
    assert spec.title.startswith("Does guider+ beat") and spec.budget == 3
    assert {spec.trials_planned(m) for m in ("tce", "guider+")} == {3}
    assert [d.noise["seed"] for d in spec.datasets.values()] == [2, 2]  # a noise draw no design choice saw
    check_claims(folder)
    page = (folder.parent / "guider-plus.md").read_text()
    assert page.startswith("# Does guider+ beat its student and an equally tuned T-CE?")


def test_a_tune_from_dataset_runs_the_source_selection_at_its_own_seeds_and_report_recomputes_it(
        tmp_path, tiny, caplog, monkeypatch):
    """tiny-clean is tuned on tiny-add20 and has its own seeds [3]: no tuning trial runs on it, its final
    runs wait for tiny-add20's tuning and then repeat exactly the grid point selected there, at seed 3
    alone and with tiny-clean's own settings; selection.json says where the selection came from; the
    page and claims.json use each dataset's seeds; report recomputes every p from the evidence alone."""
    raw = _raw(tiny, datasets=_two(tiny, None, {"tune_from": "tiny-add20", "seeds": [3], "set": {"train.epochs": 1}}),
               claims=_claim(datasets=["tiny-add20", "tiny-clean"]))
    spec = _spec_file(tmp_path / "claims", raw)
    work, out = tmp_path / "work", tmp_path / "claims"
    statuses = []
    monkeypatch.setattr(logging.getLogger("mmdenoise"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="mmdenoise"):
        waiting = claims_study(spec, work, datasets="tiny-clean", on_result=lambda r: statuses.append(r["status"]))
    assert statuses == [] and (waiting.done, waiting.pending) == (0, 2)
    assert ("claims: tiny-clean/mf/tce not tuned yet (it uses the selection on tiny-add20, whose tuning has not "
            "finished); its final runs wait") in caplog.text
    assert not (work / "tune" / "tiny-clean").exists() and not (work / "final" / "tiny-clean").exists()

    result = claims_study(spec, work, on_result=lambda r: statuses.append(r["status"]))
    # tuning: none 1 + tce 2, on tiny-add20 only; finals: 2 methods x seeds 1, 2 there, x seed 3 on tiny-clean
    assert statuses == ["trained"] * 9 and (result.done, result.pending, result.failed) == (2, 0, [])
    assert [p.name for p in (work / "tune").iterdir()] == ["tiny-add20"]
    tuned = json.loads((out / "evidence" / "tiny-add20" / "mf" / "tce" / "selection.json").read_text())
    moved = json.loads((out / "evidence" / "tiny-clean" / "mf" / "tce" / "selection.json").read_text())
    assert tuned["tuned_on"] == "tiny-add20" and len(tuned["trials"]) == 2
    assert moved["tuned_on"] == "tiny-add20" and moved["trials"] == [] and moved["used"] == moved["planned"] == 0
    assert moved["selected"] == tuned["selected"]
    for method in ("tce", "none"):
        chosen = json.loads((out / "evidence" / "tiny-add20" / "mf" / method / "selection.json").read_text())
        [final] = (work / "final" / "tiny-clean" / "mf" / method).iterdir()
        trial = json.loads((final / "trial.json").read_text())
        assert trial["params"] == {**chosen["selected"]["params"], "seed": 3}
        overrides = [tuple(o) for o in trial["overrides"]]
        assert overrides.index(("train.epochs", 2)) < overrides.index(("train.epochs", 1))
        assert sorted(p.name for p in (out / "evidence" / "tiny-clean" / "mf" / method).iterdir()) == \
            ["s3", "selection.json"]
    config = yaml.safe_load((out / "evidence" / "tiny-clean" / "mf" / "tce" / "s3" / "config.yaml").read_text())
    assert config["seed"] == 3 and config["dataset"] == "tiny-clean" and config["train"]["epochs"] == 1
    assert {f"denoiser_params.{k}": v for k, v in config["denoiser_params"].items()
            if f"denoiser_params.{k}" in tuned["selected"]["params"]} == tuned["selected"]["params"]

    data = json.loads((out / CLAIMS_JSON).read_text())
    assert [(d["tune_from"], d["seeds"]) for d in data["datasets"]] == [(None, [1, 2]), ("tiny-add20", [3])]
    cells = {c["dataset"]: c for c in data["claims"][0]["cells"]}
    assert cells["tiny-clean"]["evidence"] == {"a": ["evidence/tiny-clean/mf/tce/s3"],
                                               "b": ["evidence/tiny-clean/mf/none/s3"]}
    assert [len(cells["tiny-add20"]["evidence"][side]) for side in "ab"] == [2, 2]
    a, b = paired_per_user(sorted((work / "final" / "tiny-clean" / "mf" / "tce").iterdir()),
                           sorted((work / "final" / "tiny-clean" / "mf" / "none").iterdir()), "recall@20")
    assert cells["tiny-clean"]["p"]["recall@20"] == paired_ttest(a, b)[1]
    page = (tmp_path / "claims.md").read_text()
    assert "| tiny-add20 | " in page and "| budget 2 | 1, 2 | – |" in page
    assert "| tiny-clean | " in page and "| tuned on tiny-add20 | 3 | `train.epochs=1` |" in page
    assert "| mf | tce | 2/2 | from tiny-add20 |" in page and "the seeds of its dataset" in page
    assert "(from tiny-add20) |" in page

    shutil.rmtree(work)
    assert check_claims(out) == 2
    cli = CliRunner().invoke(app, ["report", str(out)])
    assert cli.exit_code == 0, cli.output
    assert "2 cell(s) and 2 comparison(s) against the backbone alone recomputed from the evidence files" in cli.output
    # a cell whose evidence leaves out a seed of its dataset fails, naming the cell
    tampered = json.loads((out / CLAIMS_JSON).read_text())
    tampered["claims"][0]["cells"][0]["evidence"]["a"] = cells["tiny-add20"]["evidence"]["a"][:1]
    (out / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"cell c: tce vs none on mf, tiny-add20: evidence .* is not one folder "
                                             r"per seed of tiny-add20"):
        check_claims(out)


# ------------------------------------------------------ sequential models
@pytest.fixture(scope="module")
def seq_tiny(tmp_path_factory):
    """The planted sequential preset (points of interest known per user)."""
    from mmdenoise.data.seqsynth import generate_sequential
    return generate_sequential("seq-tiny", seed=0, out=tmp_path_factory.mktemp("seqdata") / "seq-tiny")


def _seq_raw(seq_tiny, **change):
    raw = {"datasets": [{"name": "seq", "source": str(seq_tiny), "splits": [0, 1]}],
           "budget": 2, "seeds": [1], "set": {"train.epochs": 2, "train.threads": 1},
           "methods": {"base": {"model": "base"},
                       "demure": {"model": "demure", "grid": {"model_params.lambda_cont": [0.1, 0.5]}}},
           "claims": [{"id": "demure-beats-base", "claim": "Demure beats its base model", "source": "a test",
                       "kind": "beats", "method": "demure", "versus": "base", "backbones": ["sequential"]},
                      {"id": "demure-localises", "claim": "Demure's interests find the points of interest",
                       "source": "a test", "kind": "localises", "method": "demure", "backbones": ["sequential"]}]}
    raw.update(change)
    return raw


@pytest.mark.parametrize("change, message", [
    ({"methods": {"base": {"model": "base", "denoiser": "none"}}},
     r"methods\.base: give one of denoiser .* or model .*got \['denoiser', 'model'\]"),
    ({"methods": {"base": {"model": "sasrec"}}},
     r"methods\.base\.model: unknown sequential model 'sasrec'; sequential models: seq-pop, "),
    ({"methods": {"base": {"model": "base"}, "demure": {"denoiser": "tce"}}},
     r"claims\[0\]: method 'demure' is a denoiser; on backbone 'sequential' every method is a sequential model"),
    ({"claims": [{"id": "c", "claim": "x", "source": "y", "kind": "beats", "method": "demure", "versus": "base",
                  "backbones": ["mf"]}]},
     r"claims\[0\]: method 'demure' is a sequential model; its claims name backbones: \[sequential\]"),
    ({"claims": [{"id": "c", "claim": "x", "source": "y", "kind": "beats", "method": "demure", "versus": "base",
                  "backbones": ["sequential", "mf"]}]},
     r"claims\[0\]\.backbones: 'sequential' .* is not compared beside general backbones"),
    ({"claims": [{"id": "c", "claim": "x", "source": "y", "kind": "localises", "method": "demure",
                  "versus": "base", "backbones": ["sequential"]}]},
     r"claims\[0\]\.versus: kind localises compares with chance, by neither versus nor against"),
    ({"claims": [{"id": "c", "claim": "x", "source": "y", "kind": "detects", "method": "demure",
                  "against": ["mf"], "backbones": ["sequential"]}]},
     r"claims\[0\]\.kind: detects compares a denoiser's judgement on two general backbones"),
    ({"datasets": [{"name": "seq", "source": "synth-seq-tiny", "splits": [0, 0]}]},
     r"datasets\[0\]\.splits: give distinct non-negative seeds, got \[0, 0\]"),
])
def test_sequential_claims_errors_name_the_file_and_the_key(tmp_path, seq_tiny, change, message):
    with pytest.raises(ConfigError, match=r"spec\.yaml: " + message):
        load_claims_spec(_spec_file(tmp_path, _seq_raw(seq_tiny, **change)))


def test_a_localises_claim_on_general_backbones_is_refused(tmp_path, tiny):
    raw = _raw(tiny, claims=[{"id": "c", "claim": "x", "source": "y", "kind": "localises", "method": "tce",
                              "backbones": ["mf"]}])
    with pytest.raises(ConfigError, match=r"claims\[0\]\.backbones: localises measures a sequential model's "
                                          r"interest scores; name backbones: \[sequential\]"):
        load_claims_spec(_spec_file(tmp_path, raw))


def test_sequential_claims_run_on_every_user_split_pool_the_splits_and_report_recomputes_them(tmp_path, seq_tiny):
    """Demure vs its base model on two user splits (one seed): each split pairs its own test users, a
    user held out in both counts once with the mean of its differences; the localisation cell tests each
    test user's precision@3 − chance against 0; report recomputes both from the evidence alone."""

    from mmdenoise.eval.pairing import LOCALISATION_GAIN, distinct_user_differences, paired_per_split, per_user_mean
    out, work = tmp_path / "claims", tmp_path / "work"
    _spec_file(out, _seq_raw(seq_tiny))
    result = claims_study(out / "spec.yaml", work)
    assert (result.done, result.pending, result.failed) == (2, 0, [])
    assert sorted(p.name for p in (work / "tune" / "seq" / "sequential").iterdir()) == ["base", "demure"]
    finals = {m: sorted((work / "final" / "seq" / "sequential" / m).iterdir()) for m in ("base", "demure")}
    assert [p.name.split("-")[0] for p in finals["base"]] == ["split_seed=0_seed=1", "split_seed=1_seed=1"]
    configs = [yaml.safe_load((p / "config.yaml").read_text()) for p in finals["demure"]]
    assert [c["sequence"]["split_seed"] for c in configs] == [0, 1] and {c["model"] for c in configs} == {"demure"}
    data = json.loads((out / CLAIMS_JSON).read_text())
    beats, = data["claims"][0]["cells"]
    assert beats["evidence"]["a"] == ["evidence/seq/sequential/demure/split0-s1",
                                      "evidence/seq/sequential/demure/split1-s1"]
    pairs = paired_per_split([[p] for p in finals["demure"]], [[p] for p in finals["base"]], "recall@20")
    users, diff = distinct_user_differences(pairs)
    assert beats["n_users"] == users.size and beats["delta"]["recall@20"] == pytest.approx(diff.mean(), abs=1e-15)
    assert beats["p"]["recall@20"] == paired_ttest(diff, np.zeros_like(diff))[1]
    local, = data["claims"][1]["cells"]
    assert local["versus"] == "chance" and local["evidence"]["b"] == []
    gains = [per_user_mean([p], LOCALISATION_GAIN) for p in finals["demure"]]
    users, gain = distinct_user_differences([(u, g, np.zeros_like(g)) for u, g in gains])
    assert local["n_users"] == users.size > 0 and local["delta"][LOCALISATION_GAIN] == pytest.approx(gain.mean())
    page = (tmp_path / "claims.md").read_text()
    assert "| demure vs chance on sequential | ΔP@3 − chance " in page
    assert "| seq | " in page and "| 1 on user splits 0, 1 |" in page and "demure (sequential model)" in page
    shutil.rmtree(work)
    assert check_claims(out) == 2
    tampered = json.loads((out / CLAIMS_JSON).read_text())
    tampered["claims"][0]["cells"][0]["evidence"]["a"] = ["evidence/seq/sequential/demure/split0-s1"]
    (out / CLAIMS_JSON).write_text(json.dumps(tampered))
    with pytest.raises(MMDenoiseError, match=r"cell demure-beats-base: demure vs base on sequential, seq: evidence "
                                             r".* is not one folder per seed of seq on each user split"):
        check_claims(out)
