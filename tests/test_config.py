"""The tuning config rejects what cannot run, naming the key, before any training."""

import json

import pytest

from kt_core.config import ConfigError, TuningConfig, merge


def rejects(fragment, **config):
    with pytest.raises(ConfigError) as e:
        TuningConfig.from_dict(config)
    assert fragment in str(e.value), str(e.value)


def test_defaults_round_trip_through_json():
    config = TuningConfig.from_dict({"tuner": "hyperband", "objective": {"name": "val_auc", "direction": "max"},
                                     "hyperparameters": {"lr": {"type": "float", "min_value": 1e-4,
                                                                "max_value": 1e-1, "sampling": "log"}}})
    again = TuningConfig.from_dict(json.loads(config.to_json()))
    assert again == config
    assert again.objective_name == "val_auc"


@pytest.mark.parametrize("config,fragment", [
    ({"max_trails": 3}, "max_trails"),
    ({"tuner": "evolution"}, "tuner: unknown tuner"),
    ({"max_trials": "10"}, "max_trials: expected an integer"),
    ({"max_trials": 0}, "max_trials: must be >= 1"),
    ({"epochs": True}, "epochs: expected an integer"),
    ({"objective": {"name": "val_loss", "direction": "up"}}, "objective.direction"),
    ({"objective": ""}, "objective"),
    ({"hyperparameters": {"units": {"type": "int", "min_value": 10, "max_value": 1}}},
     "hyperparameters.units: min_value 10 > max_value 1"),
    ({"hyperparameters": {"act": {"type": "choice", "values": []}}}, "hyperparameters.act.values"),
    ({"hyperparameters": {"act": {"type": "choice", "values": ["a"], "default": "b"}}},
     "hyperparameters.act.default"),
    ({"hyperparameters": {"x": {"type": "integer"}}}, "hyperparameters.x.type"),
    ({"hyperparameters": {"x": {"type": "int", "min_value": 1}}}, "hyperparameters.x.max_value"),
    ({"hyperparameters": {"x": {"type": "float", "min_value": 0, "max_value": 1, "sampling": "log"}}},
     "hyperparameters.x.min_value"),
    ({"hyperparameters": {"x": {"type": "fixed"}}}, "hyperparameters.x.value"),
    ({"hyperparameters": {"x": {"type": "boolean", "values": [1]}}}, "hyperparameters.x: unknown key"),
    ({"tune_new_entries": False}, "tune_new_entries"),
    ({"tuner": "hyperband", "max_epochs": 2, "factor": 3}, "max_epochs"),
    ({"metrics": "accuracy"}, "metrics"),
    ({"early_stopping": {"patience": -1}}, "early_stopping.patience"),
    ({"early_stopping": {"patients": 1}}, "early_stopping: unknown key"),
    ({"image_features": {"img": [32, 0, 3]}}, "image_features.img"),
])
def test_invalid_configs_name_the_key(config, fragment):
    rejects(fragment, **config)


def test_yaml_and_json_files(tmp_path):
    (tmp_path / "c.yaml").write_text("tuner: grid\nmax_trials: 4\n")
    (tmp_path / "c.json").write_text('{"tuner": "bayesian"}')
    (tmp_path / "bad.json").write_text('{"tuner": ')
    assert TuningConfig.from_file(str(tmp_path / "c.yaml")) == {"tuner": "grid", "max_trials": 4}
    assert TuningConfig.from_file(str(tmp_path / "c.json")) == {"tuner": "bayesian"}
    with pytest.raises(ConfigError, match="bad.json is not valid JSON"):
        TuningConfig.from_file(str(tmp_path / "bad.json"))
    with pytest.raises(ConfigError, match="config file not found"):
        TuningConfig.from_file(str(tmp_path / "missing.yaml"))


def test_flags_override_file_values_but_none_does_not():
    assert merge({"epochs": 5, "tuner": "grid"}, {"epochs": 2, "tuner": None}) == {"epochs": 2, "tuner": "grid"}
