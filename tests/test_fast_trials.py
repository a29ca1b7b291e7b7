"""kt_core.fast_trials: cheaper bookkeeping around each trial with the same results."""

import gc
import json
import os

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from conftest import module

from kt_core import fast_trials
from kt_core.config import TuningConfig
from kt_core.data import ExamplesData
from kt_core.modules import load_module
from kt_core.search import run_search


def _small_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.BatchNormalization(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _xy(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4), dtype=np.float32), rng.integers(0, 3, n)


def _h5(path):
    import h5py

    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(
            name, (dict(obj.attrs), obj[()] if isinstance(obj, h5py.Dataset) else None)))
    return out


def test_snapshot_written_later_equals_save_weights_then(tmp_path):
    model = _small_model()
    x, y = _xy()
    model.fit(x, y, epochs=1, verbose=0)
    model.save_weights(str(tmp_path / "now.weights.h5"))
    snapshot = fast_trials.snapshot_weights(model)
    model.fit(x, y, epochs=2, verbose=0)  # the weights move on after the snapshot
    fast_trials.write_weights(snapshot, str(tmp_path / "later.weights.h5"))

    now, later = _h5(tmp_path / "now.weights.h5"), _h5(tmp_path / "later.weights.h5")
    assert now.keys() == later.keys() and any("optimizer" in k for k in now)
    for key, (attrs, value) in now.items():
        assert later[key][0] == attrs, key
        if value is not None:
            np.testing.assert_array_equal(later[key][1], value, err_msg=key)


def test_checkpoint_holds_the_best_epochs_weights(tmp_path, penguin_examples):
    out = str(tmp_path / "out")
    # "Best" = highest val_loss: an early epoch, not the last one the model ends with.
    config = TuningConfig.from_dict({"max_trials": 2, "epochs": 4, "seed": 3, "batch_size": 16,
                                     "objective": {"name": "val_loss", "direction": "max"}})
    run_search(config, penguin_examples, "species", out, module_file=module("mlp_conditional"),
               save_best_model=False)
    with open(os.path.join(out, "tuner_results.json")) as f:
        trials = json.load(f)
    data = ExamplesData(penguin_examples, "species")
    build_model = load_module(module("mlp_conditional")).build_model
    for trial in trials:
        epochs = trial["metrics"][0]
        best = max(epochs, key=lambda e: e["val_loss"])  # first of equals, as keras-tuner
        assert best is not epochs[-1]
        hp = keras_tuner.HyperParameters()
        hp.values = dict(trial["hyperparameters"])
        keras.backend.clear_session()  # layer names as in the trial
        model = build_model(hp)
        model.load_weights(os.path.join(out, "search", f"trial_{trial['trial_id']}",
                                        "checkpoint.weights.h5"))
        logs = model.evaluate(data.dataset("eval", data.layout_for(model), 16), verbose=0,
                              return_dict=True)
        assert logs["accuracy"] == pytest.approx(best["val_accuracy"], abs=1e-6)
        assert logs["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def _all_reduce_entries():
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry
    return [n for n, e in registry.items()
            if n.startswith("CustomGradient-") and fast_trials._is_all_reduce_gradient(e)]


def test_release_all_reduce_gradients_keeps_training_and_other_gradients():
    @tf.custom_gradient
    def doubled_grad(t):
        return tf.identity(t), lambda dy: 2 * dy

    @tf.function
    def traced(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            out = doubled_grad(t)
        return tape.gradient(out, t)

    assert float(traced(tf.constant(1.0))) == 2.0  # registers a non-all-reduce custom gradient
    from tensorflow.python.framework import ops

    others = {n for n, e in ops._gradient_registry._registry.items()
              if not fast_trials._is_all_reduce_gradient(e)}
    x, y = _xy()
    _small_model().fit(x, y, epochs=1, verbose=0)
    assert _all_reduce_entries()  # the train step's all-reduce registered one
    released = fast_trials.release_all_reduce_gradients()
    assert released >= 1 and not _all_reduce_entries()
    assert others <= set(ops._gradient_registry._registry)  # nothing else went
    model = _small_model()
    start = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=2, verbose=0)  # later models still train
    assert np.isfinite(history.history["loss"]).all()
    assert any(not np.array_equal(a, b) for a, b in zip(start, model.get_weights()))
    assert float(traced(tf.constant(3.0))) == 2.0


def test_frozen_gc_scope():
    assert gc.get_freeze_count() == 0
    with fast_trials.frozen_gc():
        assert gc.get_freeze_count() > 0
        frozen = gc.get_freeze_count()
        with fast_trials.frozen_gc():  # nested: leaves the outer freeze alone
            assert gc.get_freeze_count() >= frozen
        assert gc.get_freeze_count() >= frozen
    assert gc.get_freeze_count() == 0
