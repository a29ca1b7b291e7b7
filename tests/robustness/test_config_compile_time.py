"""config: rejected at pipeline compile time (`kt-pipelines compile`), naming the key,
before any pipeline file is written. (The same configs at the CLI/dict level:
tests/test_config.py; min_value > max_value at compile time:
tests/test_pipeline.py::test_compile_fails_early_on_invalid_config.)"""

import json
import os

import pytest

from pipelines import cli

from .helpers import error_line


@pytest.mark.parametrize("config,message", [
    ({"max_trails": 3}, "unknown tuning config key(s) ['max_trails']"),
    ({"max_trials": "ten"}, "max_trials: expected an integer, got 'ten'"),
    ({"hyperparameters": {"units_0": {"type": "choice", "values": []}}},
     "hyperparameters.units_0.values: must be a non-empty list"),
    ({"trial_timeout": 0}, "trial_timeout: must be > 0 seconds, got 0"),
    ({"objective": "val_auc"},
     "objective: 'val_auc' is not reported by the model pipelines.penguin_module builds with "
     "default hyperparameters; it reports ['accuracy', 'loss', 'val_accuracy', 'val_loss']"),
], ids=["unknown-key", "wrong-type", "empty-choice", "bad-trial-timeout", "objective-not-reported"])
def test_compile_rejects_config_naming_the_key(tmp_path, capsys, config, message):
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps(config))
    output = tmp_path / "pipeline.json"
    code = cli.main(["compile", "--output", str(output), "--image", "registry.example/kt:1",
                     "--config", str(path)])
    assert code == 2
    # (the unknown-key message goes on to list the known keys)
    assert error_line(capsys.readouterr().err).startswith(f"kt-pipelines: error: {message}")
    assert not os.path.exists(output)
