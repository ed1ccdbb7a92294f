"""Typed configs: unknown keys/names and wrong types fail loudly; overrides are parsed safely."""
import pytest

from mmdenoise.api import resolve_config
from mmdenoise.config import TrainConfig, from_dict, load_yaml, parse_override
from mmdenoise.errors import ConfigError, did_you_mean
from mmdenoise.sequential import resolve_sequential_config


def test_defaults_resolved_from_registries():
    config = resolve_config({"model": "lightgcn"})
    assert config.model_params == {"embedding_size": 64, "n_layers": 2, "reg_weight": 1e-4}
    assert config.train.lr == 1e-3 and config.train.batch_size == 2048 and config.train.patience == 20


def test_unknown_train_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['learning_rate'\].*valid keys: .*lr"):
        from_dict(TrainConfig, {"learning_rate": 0.1}, "train")


def test_wrong_type_is_an_error():
    with pytest.raises(ConfigError, match="train.epochs: expected an integer"):
        from_dict(TrainConfig, {"epochs": "many"}, "train")
    with pytest.raises(ConfigError, match="expected true/false"):
        from_dict(TrainConfig, {"progress": 1}, "train")


def test_a_list_for_one_value_points_to_sweeps():
    with pytest.raises(ConfigError, match=r"train.lr: expected a number, got \[0.1, 0.2\] \(list; several values "
                                          r"to try are a sweep: `mmdenoise sweep`\)"):
        from_dict(TrainConfig, {"lr": [0.1, 0.2]}, "train")


def test_int_is_accepted_where_float_expected():
    assert from_dict(TrainConfig, {"lr": 1}).lr == 1.0


def test_unknown_model_lists_valid_models():
    with pytest.raises(ConfigError, match=r"unknown model 'lightgnc' \(did you mean 'lightgcn'\?\); valid models: "):
        resolve_config({"model": "lightgnc"})
    with pytest.raises(ConfigError, match=r"unknown model 'xyz'; valid models: .*lightgcn"):   # nothing close
        resolve_config({"model": "xyz"})


def test_misspelt_keys_get_the_closest_valid_key():
    with pytest.raises(ConfigError, match=r"'n_layer' is not a known key \(did you mean 'model_params.n_layers'"):
        resolve_config({"model": "lightgcn"}, ["n_layer=2"])
    with pytest.raises(ConfigError, match=r"config.train: unknown key\(s\) \['patiense'\] \(did you mean 'patience'"):
        resolve_config({"model": "lightgcn"}, ["train.patiense=2"])
    with pytest.raises(ConfigError, match=r"\['zzz'\]; valid keys"):
        resolve_config({"model": "lightgcn"}, ["train.zzz=2"])
    assert did_you_mean(3, ["a"]) == ""
    assert did_you_mean("synth-tny", ["synth-tiny", "ml-1m"]) == " (did you mean 'synth-tiny'?)"


def test_a_sections_key_at_the_top_names_its_section():
    with pytest.raises(ConfigError, match=r"config: unknown key\(s\) \['epochs', 'lr'\] \(did you mean 'train.epochs'"):
        resolve_config({"model": "lightgcn", "epochs": 5, "lr": 0.01})
    with pytest.raises(ConfigError, match=r"\['n_layers'\] \(did you mean 'model_params.n_layers'\?\)"):
        resolve_config({"model": "lightgcn", "n_layers": 3})
    with pytest.raises(ConfigError, match=r"\['max_len'\] \(did you mean 'sequence.max_len'\?\)"):
        resolve_sequential_config({"model": "demure", "max_len": 5})


def test_a_papers_symbol_names_its_setting():
    guider = {"model": "lightgcn", "denoiser": "guider"}
    with pytest.raises(ConfigError, match=r"\['s_thres'\] \(did you mean 'threshold', written S_thres\?\)"):
        resolve_config(guider, ["denoiser.s_thres=0.8"])                      # dotted: the section's check
    with pytest.raises(ConfigError, match=r"'Lambda' is not a known key \(did you mean 'denoiser_params.ot_reg', "
                                          r"written λ\?\)"):
        resolve_config(guider, ["Lambda=0.5"])                                 # bare: across the sections
    with pytest.raises(ConfigError, match=r"\(did you mean 'denoiser_params.lambda_ai', written λ2\?\)"):
        resolve_config({"model": "lightgcn", "denoiser": "damrs"}, ["lambda_2=0.1"])
    with pytest.raises(ConfigError, match=r"\['λ₂'\] \(did you mean 'lambda_cont', written λ₂\?\)"):
        resolve_sequential_config({"model": "demure", "model_params": {"λ₂": 0.1}})   # YAML, as the paper writes it
    # a symbol belongs to its config: DA-MRS's λ1 is no key of GUIDER's, and nothing close is suggested there
    with pytest.raises(ConfigError, match=r"'lambda1' is not a known key; valid keys"):
        resolve_config(guider, ["lambda1=0.1"])


def test_unknown_model_param_is_an_error():
    with pytest.raises(ConfigError, match=r"model_params \(mf\): unknown key\(s\) \['n_layers'\]"):
        resolve_config({"model": "mf", "model_params": {"n_layers": 3}})


def test_overrides_dotted_bare_and_short_section():
    config = resolve_config({"model": "lightgcn"},
                            ["train.lr=0.01", "n_layers=3", "model.embedding_size=32", "seed=7"])
    assert config.train.lr == 0.01
    assert config.model_params["n_layers"] == 3 and config.model_params["embedding_size"] == 32
    assert config.seed == 7


def test_override_of_model_name_switches_parameter_class():
    config = resolve_config({"model": "lightgcn"}, ["model=mf"])
    assert config.model == "mf" and "n_layers" not in config.model_params


def test_bad_overrides():
    with pytest.raises(ConfigError, match="not of the form key=value"):
        resolve_config({}, ["lr"])
    with pytest.raises(ConfigError, match="'nonsense' is not a known key"):
        resolve_config({}, ["nonsense=1"])


def test_values_are_parsed_as_data_never_code(tmp_path):
    assert parse_override("x=__import__('os').getcwd()")[1] == "__import__('os').getcwd()"
    path = tmp_path / "c.yaml"
    path.write_text("model: !!python/object/apply:os.getcwd []\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(path)


# ------------------------------------------------------- declared allowed values (issue 23, class 3)
@pytest.mark.parametrize("override, message", [
    ("train.lr=-0.1", r"config.train.lr: must be ≥ 0, got -0.1"),
    ("train.lr=.nan", r"config.train.lr: must be ≥ 0, got nan"),
    ("train.lr=.inf", r"config.train.lr: must be ≥ 0, got inf"),
    ("train.weight_decay=-1", r"config.train.weight_decay: must be ≥ 0"),
    ("train.batch_size=0", r"config.train.batch_size: must be ≥ 1, got 0"),
    ("train.eval_every=0", r"config.train.eval_every: must be ≥ 1"),
    ("train.epochs=-3", r"config.train.epochs: must be ≥ 1, got -3"),
    ("train.epochs=0", r"config.train.epochs: must be ≥ 1"),
    ("train.patience=0", r"config.train.patience: must be ≥ 1"),
    ("train.eval_batch_size=0", r"config.train.eval_batch_size: must be ≥ 1"),
    ("train.threads=-1", r"config.train.threads: must be ≥ 0"),
    ("train.valid_metric=recal@20", r"config.train.valid_metric: must be a metric@k .*got 'recal@20'"),
    ("train.valid_metric=recall@7", r"train.valid_metric='recall@7' is not evaluated: train.ks is \[5, 10, 20, 50\]"),
    ("train.device=gpu", r"config.train.device: must be auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    ("seed=-1", r"config.seed: must be in \[0, 9223372036854775807\], got -1"),
    ("seed=99999999999999999999", r"config.seed: must be in"),
    ("embedding_size=0", r"model_params \(lightgcn\).embedding_size: must be ≥ 1, got 0"),
    ("n_layers=-1", r"model_params \(lightgcn\).n_layers: must be ≥ 0"),
    ("reg_weight=-0.0001", r"model_params \(lightgcn\).reg_weight: must be ≥ 0"),
])
def test_out_of_range_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config({"model": "lightgcn"}, [override])


@pytest.mark.parametrize("model, params, message", [
    ("freedom", {"dropout": 1.0}, r"model_params \(freedom\).dropout: must be in \[0, 1\), got 1.0"),
    ("freedom", {"knn_k": 0}, r"model_params \(freedom\).knn_k: must be ≥ 1"),
    ("freedom", {"modality_mix": {"text": -1}}, r"model_params \(freedom\).modality_mix: must be a mapping"),
    ("bm3", {"dropout": -0.1}, r"model_params \(bm3\).dropout: must be in \[0, 1\)"),
    ("mgcn", {"user_aggregation": "max"}, r"model_params \(mgcn\).user_aggregation: must be one of symmetric, mean"),
    ("mgcn", {"temperature": 0}, r"model_params \(mgcn\).temperature: must be > 0"),
    ("lattice", {"knn_refresh": "batch"}, r"model_params \(lattice\).knn_refresh: must be one of forward, epoch"),
    ("lattice", {"lambda_coeff": 2}, r"model_params \(lattice\).lambda_coeff: must be in \[0, 1\]"),
    ("dragon", {"user_k": 0}, r"model_params \(dragon\).user_k: must be ≥ 1"),
    ("vbpr", {"embedding_size": -5}, r"model_params \(vbpr\).embedding_size: must be ≥ 1"),
])
def test_model_settings_are_checked_by_the_one_validator(model, params, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config({"model": model, "model_params": params})


@pytest.mark.parametrize("denoiser, params, message", [
    ("guider", {"kd": "xx"}, r"denoiser_params \(guider\).kd: must be one of ot, kl, none"),
    ("guider-no-kd", {"kd": "xx"}, r"denoiser_params \(guider-no-kd\).kd: must be one of"),   # inherited
    ("guider", {"teacher": "freedom"}, r"\.teacher: must be one of lightgcn, mf"),
    ("guider", {"threshold": 1.5}, r"\.threshold: must be in \[-1, 1\]"),
    ("guider", {"ot_block": 0}, r"\.ot_block: must be ≥ 1"),
    ("guider", {"ot_gradient": "exact"}, r"\.ot_gradient: must be one of envelope, unrolled"),
    ("damrs", {"ai_strategy": "both"}, r"denoiser_params \(damrs\).ai_strategy: must be one of full, sp, mp"),
    ("bod", {"reference_decay": 1.0}, r"denoiser_params \(bod\).reference_decay: must be in \[0, 1\)"),
    ("tce", {"drop_rate": -0.5}, r"denoiser_params \(tce\).drop_rate: must be in \[0, 1\]"),
])
def test_denoiser_settings_are_checked_by_the_one_validator(denoiser, params, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config({"model": "lightgcn", "denoiser": denoiser, "denoiser_params": params})


def test_guider_ot_block_may_be_null():
    config = resolve_config({"denoiser": "guider", "denoiser_params": {"ot_block": None}})
    assert config.denoiser_params["ot_block"] is None


def test_every_config_class_declares_what_its_numbers_may_hold():
    """Each int/float setting of every registered config class has a declared Range (or other Allowed)."""
    import dataclasses
    import typing

    from mmdenoise.config import RunConfig, _field_meta
    from mmdenoise.denoise import DENOISERS
    from mmdenoise.models import MODELS
    from mmdenoise.sequential import SEQUENTIAL_MODELS
    from mmdenoise.sequential.config import SequenceConfig, SequentialRunConfig
    classes = {e.config_cls for e in (*MODELS.values(), *DENOISERS.values(), *SEQUENTIAL_MODELS.values())}
    classes |= {TrainConfig, RunConfig, SequenceConfig, SequentialRunConfig}
    missing = []
    for cls in classes:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            numeric = hints[f.name] in (int, float, int | None, float | None)
            if numeric and _field_meta(cls, f.name, "allowed") is None:
                missing.append(f"{cls.__name__}.{f.name}")
    assert not missing


# ------------------------------------------------------------------ bounded YAML (issue 23, class 5)
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi")) + "train: {epochs: *i}\n"


def test_alias_bomb_is_refused_at_once(tmp_path):
    import time
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match="expands .* to more than 100000 values") as info:
        load_yaml(path)
    assert time.perf_counter() - t0 < 2 and len(str(info.value)) < 300


def test_alias_bomb_in_an_override_is_refused():
    with pytest.raises(ConfigError, match="expands"):
        parse_override("train.epochs=" + ALIAS_BOMB.replace("\n", ", ").join("{}"))


def test_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("train: &t {epochs: *t}\n")
    with pytest.raises(ConfigError, match="recursive alias"):
        load_yaml(path)


def test_a_few_aliases_are_fine(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("common: &c {lr: 0.01}\ntrain: *c\n")
    assert load_yaml(path)["train"] == {"lr": 0.01}


def test_huge_and_deep_yaml_are_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("x: " + "1" * (2 << 20))
    with pytest.raises(ConfigError, match="limited to"):
        load_yaml(big)
    deep = tmp_path / "deep.yaml"
    deep.write_text("x: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="nested too deeply|nesting depth|expands"):
        load_yaml(deep)


def test_messages_show_values_shortened():
    huge = "x" * 100_000
    with pytest.raises(ConfigError) as info:
        resolve_config({"model": "lightgcn"}, [f"train.valid_metric={huge}"])
    assert len(str(info.value)) < 400
    with pytest.raises(ConfigError) as info:
        resolve_config({"model": huge})
    assert len(str(info.value)) < 400
    with pytest.raises(ConfigError) as info:
        from_dict(TrainConfig, {huge: 1})
    assert len(str(info.value)) < 600


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "no such file"),
    (lambda p: (p.mkdir(), p)[1], "is a folder, not a YAML file"),
    (lambda p: (p.write_bytes(b"\xff\xfe x: 1"), p)[1], "not UTF-8 text"),
    (lambda p: (p.write_text("- 1\n- 2\n"), p)[1], "expected a mapping at the top level, got list"),
])
def test_unreadable_config_files_are_config_errors(tmp_path, make, message):
    with pytest.raises(ConfigError, match=message):
        load_yaml(make(tmp_path / "c.yaml"))


def test_a_setting_added_later_leaves_recorded_runs_their_identity():
    # train.min_epochs came after the benchmark's runs: at its default it is not part of what decides a
    # run's results (so their settings keys stay); set, it is
    from mmdenoise.api import resolve_config
    from mmdenoise.config import result_settings, to_dict
    from mmdenoise.experiments.runner import settings_key
    base = {"dataset": "synth-tiny", "model": "mf", "denoiser": "none"}
    default, waiting = resolve_config(base), resolve_config(base, ["train.min_epochs=30"])
    assert "min_epochs" not in result_settings(type(default), to_dict(default))["train"]
    assert result_settings(type(waiting), to_dict(waiting))["train"]["min_epochs"] == 30
    assert settings_key(default) != settings_key(waiting)
    assert settings_key(default) == settings_key(resolve_config(base, ["train.min_epochs=0"]))
