"""Noise studies and ablations on the tiny preset: cells, mean ± std, decline rate, curves, variants."""
import json
from pathlib import Path
import statistics

import pytest
import yaml

from mmdenoise.data import read_mmrec
from mmdenoise.denoise import DENOISERS
from mmdenoise.denoise.damrs import ABLATION_SWITCHES
from mmdenoise.errors import ConfigError
from mmdenoise.experiments.report import comparison_table, find_runs
from mmdenoise.experiments.study import ablation_study, ablation_variants, noise_study, parse_kind
from mmdenoise.training import record

FAST = ["train.epochs=2"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from mmdenoise.data.synth import generate
    return generate("tiny", seed=0, out=tmp_path_factory.mktemp("data") / "tiny", image_dim=32, text_dim=16)


def test_noise_study_table_decline_rate_and_curve(tmp_path, tiny):
    result = noise_study(str(tiny), "lightgcn", "none,tce", kind="add", levels="0,0.2", seeds=2,
                         out=tmp_path / "study", overrides=FAST)
    assert len(result.records) == 2 * 2 * 2

    # every cell from the run folders themselves, by hand
    recall = {}
    for rec in result.records:
        res = record.read_result(rec["path"])
        p = rec["params"]
        assert res["seed"] == p["seed"] and res["denoiser"] == p["denoiser"]
        assert res["dataset"]["name"] == ("synth-tiny" if p["level"] == 0 else "synth-tiny-add-0.2")
        recall.setdefault((p["denoiser"], p["level"]), []).append(res["test"]["recall@20"])
    rows = {line.split("|")[1].strip(): line for line in result.table.split("test N@20")[0].splitlines()
            if line.startswith("| ") and "denoiser" not in line}
    summary = json.loads((tmp_path / "study" / "study.json").read_text())
    for run in summary["runs"]:  # folders relative to the study, so the summary can be committed or moved
        assert (tmp_path / "study" / run["path"] / "result.json").is_file() and not Path(run["path"]).is_absolute()
    for denoiser in ("none", "tce"):
        for level in (0.0, 0.2):
            values = recall[(denoiser, level)]
            assert len(values) == 2
            assert f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" in rows[denoiser]
        clean, noisy = statistics.mean(recall[(denoiser, 0.0)]), statistics.mean(recall[(denoiser, 0.2)])
        rate = (clean - noisy) / clean
        assert rows[denoiser].rstrip().endswith(f"| {100 * rate:.1f}% |")
        assert summary["decline_rate"]["lightgcn"][denoiser] == pytest.approx(rate, abs=1e-12)
    assert "| denoiser | 0% | 20% | decline 0%→20% |" in result.table

    # each seed draws its own noise; the clean level is the source itself
    noised = [read_mmrec(tmp_path / "study" / "data" / f"seed{s}" / "synth-tiny-add-0.2") for s in (0, 1)]
    assert noised[0].noise.spec["seed"] == 0 and noised[1].noise.spec["seed"] == 1
    assert noised[0].fingerprint != noised[1].fingerprint
    png = tmp_path / "study" / "noise_lightgcn.png"
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![noise_lightgcn](noise_lightgcn.png)" in (tmp_path / "study" / "study.md").read_text()

    # running it again trains nothing
    again = noise_study(str(tiny), "lightgcn", "none,tce", kind="add", levels="0,0.2", seeds=2,
                        out=tmp_path / "study", overrides=FAST)
    assert {r["status"] for r in again.records} == {"skipped"} and again.table == result.table


def test_damrs_ablation_trains_every_switch_setting_and_none(tmp_path, tiny):
    result = ablation_study(str(tiny), "lightgcn", "damrs", seeds=1, out=tmp_path / "abl",
                            overrides=["train.epochs=1"])
    labels = [line.split("|")[1].strip() for line in result.table.splitlines()
              if line.startswith("| ") and "variant" not in line]
    assert labels == ["none", *ABLATION_SWITCHES]
    by_variant = {r["params"]["variant"]: r for r in result.records}
    iig = yaml.safe_load(open(f"{by_variant['iig']['path']}/{record.CONFIG_FILE}"))
    assert iig["denoiser"] == "damrs"
    assert iig["denoiser_params"]["graph"] == "iig" and iig["denoiser_params"]["dbpr"] is False
    assert yaml.safe_load(open(f"{by_variant['none']['path']}/{record.CONFIG_FILE}"))["denoiser"] == "none"
    assert (tmp_path / "abl" / "ablation.md").exists() and (tmp_path / "abl" / "ablation.json").exists()
    # the comparison report labels an ablation's rows by variant, not all as "damrs"
    report = comparison_table(find_runs(tmp_path / "abl"))
    report_rows = [line.split("|")[1].strip() for line in report.splitlines()
                   if line.startswith("| ") and "denoiser" not in line]
    assert sorted(report_rows) == sorted(["none", *ABLATION_SWITCHES])


def test_ablation_variants_come_from_the_registry():
    guider = ablation_variants("guider")
    assert list(guider)[:2] == ["none", "guider"]
    assert set(guider) == {"none"} | {n for n in DENOISERS if n == "guider" or n.startswith("guider-")}
    assert {label: pairs for label, pairs in guider.items() if label != "none"} == {
        label: list(pairs) for label, pairs in DENOISERS["guider"].ablations.items()}
    with pytest.raises(ConfigError, match="no ablation variants of denoiser 'tce'; ablations exist for damrs, guider"):
        ablation_variants("tce")
    with pytest.raises(ConfigError, match=r"unknown denoiser 'guidr' \(did you mean 'guider'\?\)"):
        ablation_variants("guidr")


#: the variants as the study spelt them before the denoisers declared their own (0.x: DAMRS_VARIANTS and
#: the ``guider-*`` names in experiments/study.py): the same labels, in the same order, with the same overrides
DAMRS_BEFORE = {
    "iig": {"graph": "iig", "dbpr": False, "au": False, "ai": False},
    "diig": {"dbpr": False, "au": False, "ai": False},
    "diig+dbpr": {"au": False, "ai": False},
    "diig+au": {"dbpr": False, "au": True, "ai": False},
    "diig+ai": {"dbpr": False, "au": False},
    "diig+aui": {"dbpr": False, "au": True},
    "diig+sp": {"dbpr": False, "au": False, "ai_strategy": "sp"},
    "diig+mp": {"dbpr": False, "au": False, "ai_strategy": "mp"},
    "damrs-f": {"use_f": False},
    "damrs-g": {"use_g": False},
    "damrs": {},
    "damrs+au": {"au": True},
}
GUIDER_BEFORE = ["guider", "guider-no-dbpr", "guider-no-kd", "guider-no-amsc", "guider-kl"]


def test_declared_ablations_expand_to_the_same_trials_as_before():
    expected = {"none": [("denoiser", "none")],
                **{label: [("denoiser", "damrs")] + [(f"denoiser_params.{k}", v) for k, v in switches.items()]
                   for label, switches in DAMRS_BEFORE.items()}}
    damrs = ablation_variants("damrs")
    assert list(damrs) == list(expected) and damrs == expected
    guider = ablation_variants("guider")
    assert list(guider) == ["none", *GUIDER_BEFORE]
    assert guider == {"none": [("denoiser", "none")], **{n: [("denoiser", n)] for n in GUIDER_BEFORE}}


@pytest.mark.parametrize("kind, message", [("blur", "unknown noise kind"), ("swap", "needs a modality"),
                                           ("add:image", "takes no modality")])
def test_noise_kind_errors(kind, message):
    with pytest.raises(ConfigError, match=message):
        parse_kind(kind)


def test_study_rejects_bad_levels_before_training(tmp_path, tiny):
    with pytest.raises(ConfigError, match="--levels: 1.5 is not a ratio"):
        noise_study(str(tiny), "lightgcn", levels="0,1.5", seeds=1, out=tmp_path / "s")
    with pytest.raises(ConfigError, match="has no modality 'audio'"):
        noise_study(str(tiny), "lightgcn", kind="swap:audio", levels="0,0.1", seeds=1, out=tmp_path / "s")
    assert not list((tmp_path / "s").glob(f"*/{record.RESULT_FILE}"))
    # a misspelt denoiser is refused before any noisy copy of the data is written
    with pytest.raises(ConfigError, match=r"unknown denoiser 'tcee' \(did you mean 'tce'\?\)"):
        noise_study(str(tiny), "lightgcn", "none,tcee", levels="0,0.1", seeds=1, out=tmp_path / "s3")
    assert not (tmp_path / "s3").exists()


def test_scoped_override_reaches_only_its_denoisers_runs(tmp_path, tiny):
    result = noise_study(str(tiny), "lightgcn", "none,tce", levels="0", seeds=1, out=tmp_path / "s",
                         overrides=FAST + ["tce:denoiser_params.num_gradual=7"])
    configs = {r["params"]["denoiser"]: yaml.safe_load(open(f"{r['path']}/{record.CONFIG_FILE}"))
               for r in result.records}
    assert configs["tce"]["denoiser_params"]["num_gradual"] == 7
    assert configs["none"]["denoiser_params"] == {} and configs["none"]["train"]["epochs"] == 2
    with pytest.raises(ConfigError, match="scope 'tcee' is none of this study's backbones or denoisers"):
        noise_study(str(tiny), "lightgcn", "none,tce", levels="0", seeds=1, out=tmp_path / "s2",
                    overrides=["tcee:denoiser_params.num_gradual=7"])


def test_noise_table_marks_cells_significantly_above_none(tmp_path):
    """``*`` on a level where a denoiser's users beat ``none``'s in a paired t-test, not where they tie."""
    import numpy as np
    from mmdenoise.experiments.study import noise_table
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.4, 50)
    cells = {}
    for denoiser, level, shift in (("none", 0.0, 0.0), ("none", 0.2, 0.0), ("tce", 0.0, 0.0), ("tce", 0.2, 0.05)):
        records = []
        for seed in range(2):
            run = tmp_path / f"{denoiser}-{level}-{seed}"
            run.mkdir()
            values = base + shift + rng.normal(0, 0.01, 50)
            np.savez(run / record.PER_USER_FILE, users=np.arange(50), **{f"test_{m}": values
                                                                        for m in ("recall@20", "ndcg@20")})
            records.append({"path": str(run), "test": {"recall@20": float(values.mean()),
                                                       "ndcg@20": float(values.mean())}})
        cells[("lightgcn", denoiser, level)] = records
    table = noise_table("d", "add", ["lightgcn"], ["none", "tce"], [0.0, 0.2], cells, 2)
    tce_row = next(line for line in table.splitlines() if line.startswith("| tce |"))
    clean, noisy = tce_row.split("|")[2], tce_row.split("|")[3]
    assert not clean.strip().endswith("*") and noisy.strip().endswith("*")


def test_noise_table_drops_what_its_cells_cannot_give(tmp_path):
    """One level: no decline column; no ``none`` among the denoisers: no claim of a test against it."""
    from mmdenoise.experiments.study import noise_table
    run = tmp_path / "tce"
    run.mkdir()
    cells = {("lightgcn", "tce", 0.2): [{"path": str(run), "test": {"recall@20": 0.3, "ndcg@20": 0.2}}]}
    table = noise_table("d", "add", ["lightgcn"], ["tce"], [0.2], cells, 1)
    assert "| denoiser | 20% |\n" in table and "decline" not in table
    assert "(mean ± std over 1 seed)" in table and "t-test" not in table


def test_a_study_list_names_a_repeat(tmp_path):
    for kwargs, message in (({"denoisers": "none,tce,none"}, "denoisers: 'none' is given more than once"),
                            ({"models": "mf,mf"}, "models: 'mf' is given more than once"),
                            ({"levels": "0.2,0.2"}, "--levels: '0.2' is given more than once"),
                            ({"levels": [0.2, 0.2]}, "--levels: a level is given more than once in 0.2, 0.2")):
        args = {"models": "lightgcn", "denoisers": "none", "levels": "0", **kwargs}
        with pytest.raises(ConfigError, match=message):
            noise_study("synth-tiny", args.pop("models"), args.pop("denoisers"), seeds=1, out=tmp_path / "s",
                        **args)
        assert not (tmp_path / "s").exists()
