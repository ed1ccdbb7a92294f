"""Typed configs: unknown keys/names and wrong types fail loudly; overrides are parsed safely."""
import pytest

from mmdenoise.api import resolve_config
from mmdenoise.config import TrainConfig, from_dict, load_yaml, parse_override
from mmdenoise.errors import ConfigError


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


def test_int_is_accepted_where_float_expected():
    assert from_dict(TrainConfig, {"lr": 1}).lr == 1.0


def test_unknown_model_lists_valid_models():
    with pytest.raises(ConfigError, match="unknown model 'lightgnc'; valid models: .*lightgcn"):
        resolve_config({"model": "lightgnc"})


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
