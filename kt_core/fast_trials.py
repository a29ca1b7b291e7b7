"""What keras-tuner does around every trial, done cheaper, with the same results.

Measured on a 12-trial search of small MLPs (benchmarks/bench_trials.py), keras-tuner
added 50-65% to the time of fitting the same models in a plain loop, mostly:

* Garbage collection. Each build runs `keras.backend.clear_session()`, which runs a
  full `gc.collect()`, and keras-tuner's `Tuner._try_build` runs another. A full
  collection walks every object alive, and TensorFlow + Keras + TFX imports leave
  ~400k of them: ~0.3 s per collection here, twice per trial. `frozen_gc()` moves the
  objects alive when the search starts into Python's permanent generation
  (`gc.freeze()`), so collections only walk what the search created since (the
  garbage of old trials is still collected at every build), and `try_build` collects
  once per build, not twice.
* Clearing TensorFlow's eager kernel cache at every build (part of Keras'
  clear_session): the next build and fit re-create their kernels. `clear_session`
  here does the rest of Keras' clear_session.
* A device sync after every training batch. keras-tuner's `TunerCallback` overrides
  `on_batch_begin/on_batch_end` (to forward them to `Tuner.on_batch_*`, no-ops unless
  a subclass overrides them), and a callback with batch hooks makes Keras convert each
  batch's logs to Python numbers in the training loop instead of in a background
  thread: the loop waits for every step to finish before dispatching the next
  (~1 ms a step here). `EpochTunerCallback` forwards only what the tuner listens to.
* Memory growing with every trial (~6 MB per small model; keras-tuner issues #395,
  #873, #1031): TensorFlow keeps each traced train step alive through a gradient
  function it registers globally; `release_all_reduce_gradients` drops those of
  finished trials (see there).
* The best-epoch checkpoint. keras-tuner's `SaveBestEpoch` writes an HDF5 weights
  file at every epoch that improves the objective (~50 ms each for a small MLP,
  encoding, not disk). `DeferredBestEpoch` takes the same decision at the same
  moment but keeps a copy of the weights in memory and writes the file once, when
  the execution ends: the file then holds what keras-tuner's would hold, the
  weights of the best epoch so far.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
from typing import List, Optional, Tuple


@contextlib.contextmanager
def frozen_gc():
    """Collections inside skip the objects alive on entry (unfrozen on exit).

    Does nothing when something else already froze objects: unfreezing on exit
    would also release theirs.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def with_frozen_gc(fn):
    """Decorator: `fn` runs inside `frozen_gc()`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with frozen_gc():
            return fn(*args, **kwargs)
    return wrapper


def try_build(tuner, hp):
    """keras-tuner's `Tuner._try_build` with one full garbage collection per build
    (the one `clear_session()` runs) instead of two back to back."""
    import keras
    from keras_tuner import errors
    from keras_tuner.src.engine import tuner as tuner_module

    release_all_reduce_gradients()  # before the collection below: frees old graphs
    clear_session()  # resets Keras' global state, then gc.collect()
    model = tuner._build_hypermodel(hp)
    if not isinstance(model, keras.models.Model):
        raise errors.FatalTypeError(
            "Expected the model-building function, or HyperModel.build() to return a valid "
            f"Keras Model instance. Received: {model} of type {type(model)}.")
    size = tuner_module.maybe_compute_model_size(model)
    if tuner.max_model_size and size > tuner.max_model_size:
        raise errors.FailedTrialError(f"Oversized model: {size} parameters. Skip model.")
    return model


def clear_session() -> None:
    """`keras.backend.clear_session()` (fresh Keras global state, so layer names start
    over as keras-tuner's checkpoints expect; TF's default graph reset; a garbage
    collection) minus `clear_kernel_cache()`: TensorFlow's cache of eager kernels is
    keyed by op and attributes, not shapes, so it stays small across trials, and
    emptying it made every next build and fit re-create its kernels (~40 ms of CPU
    per build and as much per fit here). Other backends, or a Keras laid out
    differently: Keras' own clear_session."""
    import threading

    import keras

    try:
        from keras.src.backend.common import global_state
    except ImportError:
        global_state = None
    if (keras.backend.backend() != "tensorflow" or global_state is None
            or not hasattr(global_state, "GLOBAL_STATE_TRACKER")
            or not hasattr(global_state, "GLOBAL_SETTINGS_TRACKER")):
        keras.backend.clear_session()
        return
    import tensorflow as tf

    global_state.GLOBAL_STATE_TRACKER = threading.local()
    global_state.GLOBAL_SETTINGS_TRACKER = threading.local()
    tf.compat.v1.reset_default_graph()
    gc.collect()


def release_all_reduce_gradients() -> int:
    """Drops the gradient functions TensorFlow registered for earlier train steps'
    all-reduce; returns how many.

    Every traced Keras train step sums gradients across replicas through
    `ReplicaContext.all_reduce` (the default strategy too), which defines a
    `tf.custom_gradient` in graph mode: that registers a new "CustomGradient-N" in
    TensorFlow's global gradient registry, never removed, whose closure holds the
    whole traced train-step graph. ~6 MB per trained model here: the memory growth
    of long searches. The function is only looked up while that train step is being
    traced (the gradient is taken inside the trace), so between trials it is dead.
    Only entries whose gradient function comes from `all_reduce` are dropped; if
    TensorFlow's internals differ, nothing is.
    """
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry
    except (ImportError, AttributeError):
        return 0
    stale = [name for name, entry in list(registry.items())
             if name.startswith("CustomGradient-") and _is_all_reduce_gradient(entry)]
    for name in stale:
        registry.pop(name, None)
    return len(stale)


def _is_all_reduce_gradient(entry) -> bool:
    """internal_grad_fn -> tape_grad_fn -> grad_fn defined in `...all_reduce...`."""
    fn = entry.get("type") if isinstance(entry, dict) else None
    try:
        for cell in getattr(fn, "__closure__", None) or ():
            for inner in getattr(cell.cell_contents, "__closure__", None) or ():
                grad_fn = inner.cell_contents
                if callable(grad_fn) and ".all_reduce." in getattr(grad_fn, "__qualname__", ""):
                    return True
    except ValueError:  # an empty cell
        return False
    return False


def _weights_io():
    from keras.src.saving import saving_lib

    return saving_lib


def weights_plan(model) -> List[Tuple]:
    """What `model.save_weights` writes (layer and optimizer variables, in its order,
    under its paths), as references: read them with `take_snapshot`. Walking the
    model is the slow part of saving (~30 ms for a small MLP); the plan is reused."""
    saving_lib = _weights_io()

    class RecordingStore(saving_lib.H5IOStore):
        """Keras' HDF5 store interface, recording instead of encoding."""

        def __init__(self):  # no file: everything is recorded in `ops`
            self.mode = "w"
            self.ops: List[Tuple] = []

        def __bool__(self):
            return True

        def make(self, path, metadata=None):
            self.ops.append(("make", path, metadata))
            return self

        def __setitem__(self, key, value):
            self.ops.append(("set", key, value))

        def close(self):
            pass

    store = RecordingStore()
    saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="",
                           visited_saveables=set())
    return _optimizer_as_variables(store.ops, getattr(model, "optimizer", None))


def _optimizer_as_variables(ops: List[Tuple], optimizer) -> List[Tuple]:
    """Keras optimizers save `variables[i].numpy()` under key `str(i)`: put the
    variables themselves in the plan, where every value matches, so it can be reused."""
    import numpy as np

    variables = list(getattr(optimizer, "variables", None) or [])
    ops, in_optimizer = list(ops), False
    for i, op in enumerate(ops):
        if op[0] == "make":
            in_optimizer = op[2] is not None and op[2].get("name") == getattr(optimizer, "name", None)
            continue
        key, value = op[1], op[2]
        if (in_optimizer and not _is_variable(value) and key.isdigit() and int(key) < len(variables)
                and np.array_equal(np.asarray(value), variables[int(key)].numpy())
                and np.asarray(value).dtype == variables[int(key)].numpy().dtype):
            ops[i] = ("set", key, variables[int(key)])
    return ops


def _is_variable(value) -> bool:
    import keras
    import tensorflow as tf

    return isinstance(value, (keras.Variable, tf.Variable))


def take_snapshot(plan: List[Tuple]) -> List[Tuple]:
    """The plan with every variable replaced by a numpy copy of its current value."""
    from keras.src import backend

    return [op if op[0] == "make" else (op[0], op[1], _copy(backend.convert_to_numpy(op[2])))
            for op in plan]


def snapshot_weights(model) -> List[Tuple]:
    """`model.save_weights`, in memory: (make path | set key value) operations."""
    return take_snapshot(weights_plan(model))


def _copy(value):
    import numpy as np

    return np.array(value, copy=True)


def write_weights(ops: List[Tuple], filepath: str) -> None:
    """Writes a snapshot as the `.weights.h5` file `model.save_weights` would have
    written (same groups, datasets and attributes; local or gs:// paths)."""
    import tensorflow as tf

    saving_lib = _weights_io()
    buffer = io.BytesIO()
    store = saving_lib.H5IOStore(buffer, mode="w")
    try:
        for op in ops:
            if op[0] == "make":
                store.make(op[1], metadata=op[2])
            else:
                store[op[1]] = op[2]
    finally:
        store.close()
    with tf.io.gfile.GFile(filepath, "wb") as f:
        f.write(buffer.getvalue())


@functools.lru_cache(maxsize=None)
def _callback_classes():
    """(DeferredBestEpoch, EpochTunerCallback), defined on first use: importing this
    module must not import Keras (kt_core.search is imported by light commands)."""
    import keras

    class DeferredBestEpoch(keras.callbacks.Callback):
        """keras-tuner's `SaveBestEpoch` (same objective, same best value across the
        executions of a trial, same choice of epoch) writing once per execution."""

        def __init__(self, original):
            super().__init__()
            self.original = original  # keeps `best_value` across executions
            self.snapshot: Optional[List[Tuple]] = None
            self._plan: Optional[List[Tuple]] = None

        def on_epoch_end(self, epoch, logs=None):
            objective = self.original.objective
            if not objective.has_value(logs):  # keras-tuner then saves every epoch
                self._take()
                return
            value = objective.get_value(logs)
            if objective.better_than(value, self.original.best_value):
                self.original.best_value = value
                self._take()

        def _take(self):
            plan = self._plan or weights_plan(self.model)
            # Reusable only when every value is a variable (read again each time).
            if all(op[0] == "make" or _is_variable(op[2]) for op in plan):
                self._plan = plan
            self.snapshot = take_snapshot(plan)

        def flush(self) -> None:
            """Writes the best epoch's weights (if this execution improved on the best)."""
            if self.snapshot is not None:
                write_weights(self.snapshot, self.original.filepath)
                self.snapshot = None

    class EpochTunerCallback(keras.callbacks.Callback):
        """keras-tuner's `TunerCallback` without the batch hooks (see the module doc)."""

        def __init__(self, tuner, trial):
            super().__init__()
            self.tuner = tuner
            self.trial = trial

        def on_epoch_begin(self, epoch, logs=None):
            self.tuner.on_epoch_begin(self.trial, self.model, epoch, logs=logs)

        def on_epoch_end(self, epoch, logs=None):
            self.tuner.on_epoch_end(self.trial, self.model, epoch, logs=logs)

    return DeferredBestEpoch, EpochTunerCallback


def deferred_best_epoch(original):
    """A DeferredBestEpoch standing in for keras-tuner's SaveBestEpoch `original`."""
    return _callback_classes()[0](original)


def epoch_tuner_callback(tuner, trial):
    return _callback_classes()[1](tuner, trial)


def lighter_callbacks(tuner, callbacks):
    """`callbacks` (as keras-tuner's `run_trial` passes them) with its `TunerCallback`
    replaced by an `EpochTunerCallback` when `tuner` does not override the batch hooks,
    and its `SaveBestEpoch` by a `DeferredBestEpoch` (also returned, to `flush()` after
    fit; None when there is none or under a distribution strategy, where keras-tuner
    writes through per-worker temporary files)."""
    from keras_tuner.src.engine import tuner as tuner_module
    from keras_tuner.src.engine import tuner_utils

    batch_hooks = (type(tuner).on_batch_begin is not tuner_module.Tuner.on_batch_begin
                   or type(tuner).on_batch_end is not tuner_module.Tuner.on_batch_end)
    callbacks, deferred = list(callbacks or []), None
    for i, callback in enumerate(callbacks):
        if type(callback) is tuner_utils.TunerCallback and not batch_hooks:
            callbacks[i] = epoch_tuner_callback(callback.tuner, callback.trial)
        elif (type(callback) is tuner_utils.SaveBestEpoch and deferred is None
              and getattr(tuner, "distribution_strategy", None) is None):
            callbacks[i] = deferred = deferred_best_epoch(callback)
    return callbacks, deferred
