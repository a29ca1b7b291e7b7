"""data: labels the model cannot take; records that do not match the schema, through
the component. (Missing split, empty split, corrupt gzip, schema mismatch and absent
label key through the CLI: tests/test_cli.py.)"""

import os

import pytest
from conftest import module

from kt_core.data import DataError

from .helpers import bad_module, error_line, run_tuner_executor, tune


def test_label_values_out_of_range_for_the_output_fail_before_training(
        tmp_path, capsys, penguin_examples):
    out = tmp_path / "out"
    code, _, err = tune(capsys, out, penguin_examples, bad_module("two_unit_output"),
                        "--max-trials", "2", "--epochs", "1")
    assert code == 2
    assert error_line(err) == (
        "kt-pipelines: error: label 'species' has values 0..2 in split 'train', but the model's "
        "output has 2 units (sparse_categorical_crossentropy): class labels must be in 0..1; "
        "give the last layer 3 units or remap the labels")
    assert not os.path.exists(out / "tuner_results.json")  # no trial ran


def test_records_not_matching_the_schema_through_the_component(tmp_path, penguin_examples):
    schema = ('feature { name: "species" type: INT value_count { min: 1 max: 1 } }\n'
              'feature { name: "body_mass_g" type: BYTES value_count { min: 1 max: 1 } }\n')
    with pytest.raises(DataError) as e:
        run_tuner_executor(tmp_path, penguin_examples, module("mlp_conditional"),
                           {"max_trials": 1, "epochs": 1}, schema_text=schema)
    train_file = os.path.join(penguin_examples, "Split-train", "data_tfrecord-00000-of-00001.gz")
    assert str(e.value).startswith(f"records in {train_file} do not match the feature spec")
    assert "body_mass_g" in str(e.value)
    assert not os.path.exists(tmp_path / "best_hyperparameters" / "best_hyperparameters.txt")
    assert not os.path.exists(tmp_path / "tuner_results" / "tuner_results.json")
