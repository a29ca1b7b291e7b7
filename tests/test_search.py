"""The seed's keras-tuner examples, each through our config, on real TFRecords."""

import json
import os

import keras_tuner
import pytest
from conftest import module

from kt_core.config import TuningConfig
from kt_core.search import run_search


def search(tmp_path, examples, module_file, label_key="species", **config):
    config.setdefault("epochs", 2)
    config.setdefault("seed", 1)
    out = str(tmp_path / "out")
    result = run_search(TuningConfig.from_dict(config), examples_dir=examples, label_key=label_key,
                        output_dir=out, module_file=module_file)
    with open(os.path.join(out, "tuner_results.json")) as f:
        trials = json.load(f)
    return result, trials, out


def values(trials, key):
    return [t["hyperparameters"].get(key) for t in trials]


def test_random_search_with_executions_per_trial(tmp_path, penguin_examples):
    result, trials, out = search(tmp_path, penguin_examples, module("mlp_conditional"),
                                 tuner="random", max_trials=3, executions_per_trial=2,
                                 objective="val_accuracy")
    assert len(trials) == 3
    assert all(t["status"] == "COMPLETED" for t in trials)
    # Two executions per trial, each with its per-epoch metrics.
    assert all(len(t["metrics"]) == 2 and len(t["metrics"][0]) == 2 for t in trials)
    assert all("val_accuracy" in t["metrics"][1][-1] for t in trials)
    # The score is the average of the executions' best epochs (keras-tuner's rule).
    t = trials[0]
    best = [max(e["val_accuracy"] for e in ex) for ex in t["metrics"]]
    assert t["score"] == pytest.approx(sum(best) / 2, rel=1e-6)
    # Trial logs and checkpoints (keras-tuner's my_dir/helloworld) and the best model.
    assert os.path.isfile(os.path.join(out, "search", "oracle.json"))
    assert os.path.isdir(os.path.join(out, "search", f"trial_{trials[0]['trial_id']}"))
    assert os.path.isfile(result.best_model_path)


def test_best_hyperparameters_round_trip(tmp_path, penguin_examples):
    result, trials, out = search(tmp_path, penguin_examples, module("mlp_conditional"),
                                 max_trials=3, objective="val_accuracy")
    with open(os.path.join(out, "best_hyperparameters.txt")) as f:
        hp = keras_tuner.HyperParameters.from_config(json.load(f))
    scored = [t for t in trials if t["score"] is not None]
    best = max(scored, key=lambda t: t["score"])
    assert hp.values == best["hyperparameters"]
    # The stock TFX Tuner's record keys: trial_id, score and the values at top level.
    for key, value in best["hyperparameters"].items():
        assert best[key] == value
    assert result.best_trial_id == best["trial_id"]


def test_conditional_layers(tmp_path, penguin_examples):
    _, trials, _ = search(tmp_path, penguin_examples, module("mlp_conditional"),
                          tuner="grid", max_trials=3, epochs=1,
                          hyperparameters={"num_layers": {"type": "int", "min_value": 1, "max_value": 3},
                                           "activation": {"type": "fixed", "value": "relu"},
                                           "dropout": {"type": "fixed", "value": False},
                                           "lr": {"type": "fixed", "value": 0.01}},
                          tune_new_entries=False)
    layers = sorted(values(trials, "num_layers"))
    assert layers == [1, 2, 3]
    for t in trials:
        # Only units_i for i < num_layers were built (trial's hp values contain every
        # created entry; the model used exactly num_layers of them).
        assert f"units_{t['hyperparameters']['num_layers'] - 1}" in t["hyperparameters"]


def test_hyperband(tmp_path, penguin_examples):
    result, trials, out = search(tmp_path, penguin_examples, module("mlp_conditional"),
                                 tuner="hyperband", max_epochs=4, factor=2,
                                 objective="val_accuracy")
    assert len(trials) > 3
    assert all(t["status"] == "COMPLETED" for t in trials)
    epochs = {t["hyperparameters"]["tuner/epochs"] for t in trials}
    assert max(epochs) == 4 and min(epochs) < 4
    # Later rounds warm-start from an earlier trial's checkpoint.
    assert any(t["hyperparameters"].get("tuner/trial_id") for t in trials)
    with open(os.path.join(out, "best_hyperparameters.txt")) as f:
        assert "tuner/epochs" in json.load(f)["values"]


def test_hypermodel_subclass_named_by_config(tmp_path, penguin_examples):
    _, trials, _ = search(tmp_path, penguin_examples, module("hypermodel_class"),
                          hypermodel="PenguinHyperModel", hypermodel_args={"classes": 3},
                          max_trials=3, epochs=1)
    assert all(t["status"] == "COMPLETED" for t in trials)
    assert all({"units", "lr", "shuffle"} <= set(t["hyperparameters"]) for t in trials)


def test_hypermodel_instance_attribute(tmp_path, penguin_examples):
    _, trials, _ = search(tmp_path, penguin_examples, module("hypermodel_instance"),
                          tuner="grid", max_trials=5, epochs=1)
    assert sorted(values(trials, "units")) == [4, 8]


def test_hyperresnet_on_png_images(tmp_path, image_examples):
    # HyperResNet with input_shape/classes taken from the data (image feature, labels).
    _, trials, out = search(tmp_path, image_examples, "resnet", label_key="label",
                            image_features={"image": [32, 32, 3]}, max_trials=1, epochs=1,
                            batch_size=16, objective="val_accuracy",
                            hyperparameters={"version": {"type": "fixed", "value": "v2"},
                                             "conv3_depth": {"type": "fixed", "value": 4},
                                             "conv4_depth": {"type": "fixed", "value": 6},
                                             "pooling": {"type": "fixed", "value": "avg"},
                                             "optimizer": {"type": "fixed", "value": "adam"},
                                             "learning_rate": {"type": "fixed", "value": 0.001}})
    assert [t["status"] for t in trials] == ["COMPLETED"]
    assert trials[0]["hyperparameters"]["version"] == "v2"


def test_hyperxception_on_float_array_images(tmp_path):
    import datagen

    examples = datagen.write_examples(str(tmp_path / "ex"), {
        "train": datagen.float_image_columns(48, 0, size=32),
        "eval": datagen.float_image_columns(16, 1, size=32)})
    _, trials, _ = search(tmp_path, examples, "xception", label_key="label",
                          image_features={"pixels": [32, 32, 3]}, max_trials=1, epochs=1,
                          batch_size=16, objective="val_accuracy",
                          hyperparameters={"conv2d_num_filters": {"type": "fixed", "value": 32},
                                           "num_residual_blocks": {"type": "fixed", "value": 2}})
    assert [t["status"] for t in trials] == ["COMPLETED"]
    assert trials[0]["hyperparameters"]["num_residual_blocks"] == 2


def test_restricted_space_tune_new_entries_false(tmp_path, penguin_examples):
    _, trials, _ = search(tmp_path, penguin_examples, module("mlp_conditional"),
                          max_trials=4, epochs=1, tune_new_entries=False,
                          hyperparameters={"lr": {"type": "float", "min_value": 1e-3,
                                                  "max_value": 1e-1, "sampling": "log"}})
    assert len({t["hyperparameters"]["lr"] for t in trials}) == len(trials) == 4
    # Everything not listed stays at its default: num_layers -> min 1, units_0 -> min 4,
    # activation -> first choice, dropout -> False.
    for t in trials:
        hp = t["hyperparameters"]
        assert (hp["num_layers"], hp["units_0"], hp["activation"], hp["dropout"]) == (1, 4, "relu", False)


def test_fixed_value_tune_the_rest(tmp_path, penguin_examples):
    _, trials, _ = search(tmp_path, penguin_examples, module("mlp_conditional"),
                          max_trials=4, epochs=1, tune_new_entries=True,
                          hyperparameters={"lr": {"type": "fixed", "value": 0.02}})
    assert {t["hyperparameters"]["lr"] for t in trials} == {0.02}
    tuned = {(t["hyperparameters"]["num_layers"], t["hyperparameters"]["units_0"]) for t in trials}
    assert len(tuned) > 1


def test_defaults_used_when_not_tuned(tmp_path, penguin_examples):
    _, trials, _ = search(tmp_path, penguin_examples, module("mlp_conditional"),
                          max_trials=2, epochs=1, tune_new_entries=False,
                          hyperparameters={"num_layers": {"type": "int", "min_value": 1, "max_value": 3,
                                                          "default": 2},
                                           "units_0": {"type": "int", "min_value": 4, "max_value": 32,
                                                       "step": 4, "default": 12},
                                           "activation": {"type": "choice", "values": ["relu", "tanh"],
                                                          "default": "tanh"}})
    # Not-listed entries (units_1, dropout, lr) use the module's defaults, in every trial.
    for t in trials:
        hp = t["hyperparameters"]
        assert hp["lr"] == pytest.approx(1e-3) and hp["dropout"] is False
        if hp["num_layers"] >= 2:
            assert hp["units_1"] == 4


def test_compile_overrides_precision_objective(tmp_path, binary_examples):
    result, trials, _ = search(
        tmp_path, binary_examples, module("binary_uncompiled_metrics"), label_key="label",
        max_trials=2, epochs=2, optimizer={"class_name": "Adam", "config": {"learning_rate": 0.05}},
        loss="binary_crossentropy",
        metrics=[{"class_name": "Precision", "config": {"name": "precision"}},
                 {"class_name": "Recall", "config": {"name": "recall"}}],
        objective={"name": "val_precision", "direction": "max"})
    for t in trials:
        last = t["metrics"][0][-1]
        assert {"val_precision", "val_recall"} <= set(last)
        assert "accuracy" not in last  # the override replaced the module's metrics
    best = max(trials, key=lambda t: t["score"])
    assert result.best_trial_id == best["trial_id"]
    assert best["score"] == pytest.approx(max(e["val_precision"] for e in best["metrics"][0]))


def test_multi_input_model_gets_named_features(tmp_path, binary_examples):
    _, trials, _ = search(tmp_path, binary_examples, module("multi_input"), label_key="label",
                          max_trials=2, epochs=10, batch_size=16, objective="val_accuracy")
    assert all(t["status"] == "COMPLETED" for t in trials)
    assert max(t["score"] for t in trials) > 0.6


def test_failing_build_gives_failed_trials_and_search_continues(tmp_path, penguin_examples):
    result, trials, out = search(tmp_path, penguin_examples, module("flaky"), tuner="grid",
                                 max_trials=10, epochs=1)
    by_units = {t["hyperparameters"]["units"]: t for t in trials}
    assert sorted(by_units) == [4, 8, 13, 16]
    assert by_units[13]["status"] == "FAILED" and by_units[13]["score"] is None
    assert "13 units are unlucky" in by_units[13]["error"]
    assert all(by_units[u]["status"] == "COMPLETED" for u in (4, 8, 16))
    assert result.best_hyperparameters.values["units"] != 13


def test_resume_keeps_completed_trials(tmp_path, penguin_examples):
    _, first, out = search(tmp_path, penguin_examples, module("mlp_conditional"), max_trials=2, epochs=1)
    _, second, _ = search(tmp_path, penguin_examples, module("mlp_conditional"), max_trials=4, epochs=1)
    assert [t["trial_id"] for t in second[:2]] == [t["trial_id"] for t in first]
    assert second[:2] == first  # not re-run: same records, same durations
    assert len(second) == 4
