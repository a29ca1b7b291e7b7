"""`kt-pipelines tune` end to end, and bad input failing early with one clear line."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, module
from robustness.helpers import error_line  # noqa: F401  (used by the tests below)
from robustness.helpers import tune as tune_in_process

KT = os.path.join(os.path.dirname(sys.executable), "kt-pipelines")


def tune(tmp_path, capsys, *extra, examples=None, module_file=None, label="species"):
    return tune_in_process(capsys, tmp_path / "out", examples,
                           module_file or module("mlp_conditional"), *extra, label=label)


def test_console_script_flags_override_config_file(tmp_path, penguin_examples):
    config = tmp_path / "tuning.yaml"
    config.write_text("tuner: random\nmax_trials: 5\nepochs: 3\nobjective: val_loss\nseed: 3\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        [KT, "tune", "--examples", penguin_examples, "--module-file", module("mlp_conditional"),
         "--label-key", "species", "--output-dir", str(out), "--config", str(config),
         "--max-trials", "2", "--epochs", "1", "--objective", "val_accuracy"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    trials = json.loads((out / "tuner_results.json").read_text())
    assert len(trials) == 2  # --max-trials won over the file's 5
    assert all(len(t["metrics"][0]) == 1 for t in trials)  # --epochs 1
    recorded = json.loads((out / "search_config.json").read_text())
    assert recorded["objective"] == {"name": "val_accuracy", "direction": "max"}
    assert recorded["config"]["max_trials"] == 2 and recorded["config"]["tuner"] == "random"
    assert "best hyperparameters:" in proc.stdout
    # The search-space and results summaries are in the log.
    assert "Search space summary" in proc.stdout and "Results summary" in proc.stdout
    # One progress line per finished trial.
    assert proc.stderr.count("trial ") >= 2 and "best so far" in proc.stderr


def test_parallel_flags_override_config_file(tmp_path, capsys, penguin_examples):
    import argparse

    from kt_core.cli import add_tuning_flags, tuning_config_dict

    config = tmp_path / "tuning.yaml"
    config.write_text("tuner: random\nmax_trials: 4\nnum_parallel_trials: 4\n")
    parser = argparse.ArgumentParser()
    add_tuning_flags(parser)
    args = parser.parse_args(["--config", str(config), "--num-parallel-trials", "2",
                              "--launcher", "local", "--trials-per-gpu", "2"])
    merged = tuning_config_dict(args)
    assert (merged["num_parallel_trials"], merged["launcher"], merged["trials_per_gpu"]) == \
        (2, "local", 2)
    assert merged["max_trials"] == 4  # what no flag names stays as the file has it
    # A bad value is refused before any data is read, naming the key.
    code, _, err = tune(tmp_path, capsys, "--launcher", "nope", examples=penguin_examples)
    assert code == 2 and "launcher: must be one of" in error_line(err)
    code, _, err = tune(tmp_path, capsys, "--num-parallel-trials", "0", examples=penguin_examples)
    assert code == 2 and "num_parallel_trials" in error_line(err)
    assert not (tmp_path / "out" / "tuner_results.json").exists()


def test_missing_module_file(tmp_path, capsys, penguin_examples):
    code, _, err = tune(tmp_path, capsys, examples=penguin_examples,
                        module_file=str(tmp_path / "nope.py"))
    assert code == 2
    assert f"module file not found: {tmp_path / 'nope.py'}" in error_line(err)


def test_module_without_build_model(tmp_path, capsys, penguin_examples):
    code, _, err = tune(tmp_path, capsys, examples=penguin_examples, module_file=module("no_build"))
    assert code == 2
    line = error_line(err)
    assert "no_build.py" in line and "build_model" in line and "hypermodel" in line


def test_module_syntax_error(tmp_path, capsys, penguin_examples):
    bad = tmp_path / "bad.py"
    bad.write_text("def build_model(hp):\n  return (\n")
    code, _, err = tune(tmp_path, capsys, examples=penguin_examples, module_file=str(bad))
    assert code == 2 and "syntax error" in error_line(err) and str(bad) in error_line(err)


def test_uncompiled_model(tmp_path, capsys, penguin_examples):
    code, _, err = tune(tmp_path, capsys, examples=penguin_examples, module_file=module("uncompiled"))
    assert code == 2 and "uncompiled model" in error_line(err)
    assert not (tmp_path / "out" / "tuner_results.json").exists()  # failed before any trial


def test_build_model_returns_not_a_model(tmp_path, capsys, penguin_examples):
    code, _, err = tune(tmp_path, capsys, examples=penguin_examples, module_file=module("not_a_model"))
    assert code == 2 and "valid Keras Model" in error_line(err)


def test_unknown_label_key_lists_features(tmp_path, capsys, penguin_examples):
    code, _, err = tune(tmp_path, capsys, examples=penguin_examples, label="speces")
    line = error_line(err)
    assert code == 2 and "'speces'" in line
    for feature in ("body_mass_g", "culmen_depth_mm", "culmen_length_mm", "flipper_length_mm", "species"):
        assert feature in line


def test_unknown_tuner(tmp_path, capsys, penguin_examples):
    code, _, err = tune(tmp_path, capsys, "--tuner", "evolution", examples=penguin_examples)
    assert code == 2 and "tuner: unknown tuner 'evolution'" in error_line(err)


def test_unknown_config_key(tmp_path, capsys, penguin_examples):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"max_trails": 3}))
    code, _, err = tune(tmp_path, capsys, "--config", str(config), examples=penguin_examples)
    assert code == 2 and "max_trails" in error_line(err)


def test_objective_not_reported_by_model(tmp_path, capsys, penguin_examples):
    code, _, err = tune(tmp_path, capsys, "--objective", "val_auc", examples=penguin_examples)
    line = error_line(err)
    assert code == 2 and "'val_auc' is not reported" in line and "val_accuracy" in line
    assert not (tmp_path / "out" / "tuner_results.json").exists()


def test_missing_split(tmp_path, capsys, penguin_examples):
    examples = tmp_path / "examples"
    shutil.copytree(os.path.join(penguin_examples, "Split-train"), examples / "Split-train")
    code, _, err = tune(tmp_path, capsys, examples=str(examples))
    line = error_line(err)
    assert code == 2 and "split 'eval' not found" in line and "['train']" in line


def test_empty_tfrecords_name_the_file(tmp_path, capsys):
    import datagen

    examples = datagen.write_examples(str(tmp_path / "ex"), {"train": {"x": [], "species": []},
                                                           "eval": {"x": [], "species": []}})
    code, _, err = tune(tmp_path, capsys, examples=examples)
    line = error_line(err)
    assert code == 2 and "no records in" in line
    assert os.path.join("Split-train", "data_tfrecord-00000-of-00001.gz") in line


def test_corrupt_tfrecords_name_the_file(tmp_path, capsys, penguin_examples):
    examples = tmp_path / "examples"
    shutil.copytree(penguin_examples, examples)
    bad = examples / "Split-eval" / "data_tfrecord-00000-of-00001.gz"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # truncated gzip
    code, _, err = tune(tmp_path, capsys, examples=str(examples))
    line = error_line(err)
    assert code == 2 and str(bad) in line and "corrupt" in line


def test_records_not_matching_schema(tmp_path, capsys, penguin_examples):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text('feature { name: "species" type: INT value_count { min: 1 max: 1 } }\n'
                      'feature { name: "body_mass_g" type: BYTES value_count { min: 1 max: 1 } }\n')
    code, _, err = tune(tmp_path, capsys, "--schema", str(schema), examples=penguin_examples)
    line = error_line(err)
    assert code == 2 and "do not match" in line and "Split-train" in line


def test_console_script_error_exit_code(tmp_path, penguin_examples):
    proc = subprocess.run([KT, "tune", "--examples", str(tmp_path / "missing"), "--module-file",
                           module("mlp_conditional"), "--label-key", "species",
                           "--output-dir", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"kt-pipelines: error: examples directory not found: {tmp_path / 'missing'}")
