"""What every case shares: the result shape, clocks, memory readings, generated examples."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from typing import Any, Dict, Optional

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PENGUIN_MODULE = os.path.join(REPO, "pipelines", "penguin_module.py")
PENGUIN_CSV = os.path.join(REPO, "data", "penguins", "csv")
LABEL = "label"


def result(case: str, ours_s: Optional[float], baseline_s: Optional[float], *,
           ratio: Optional[float] = None, ratio_meaning: str, goal: str,
           goal_met: Optional[bool], **details: Any) -> Dict[str, Any]:
    """One bench-results.json entry; `ratio` defaults to ours_s / baseline_s."""
    if ratio is None and ours_s is not None and baseline_s:
        ratio = ours_s / baseline_s
    return {"case": case,
            "ours_s": _round(ours_s), "baseline_s": _round(baseline_s), "ratio": _round(ratio, 4),
            "details": {"ratio_meaning": ratio_meaning, "goal": goal, "goal_met": goal_met,
                        **details}}


def _round(x, digits=3):
    return None if x is None else round(float(x), digits)


class Clock:
    """`with Clock() as c: ...` then `c.s` (wall seconds)."""

    def __enter__(self):
        self._t0 = time.perf_counter()
        self.s = None
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self._t0
        return False


def rss_mb() -> float:
    """Resident memory of this process in MiB (psutil, else /proc/self/status)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    raise RuntimeError("cannot read resident memory")


def quiet_tensorflow() -> None:
    """Keeps case logs readable: no TF C++ info lines, no absl/keras-tuner chatter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("absl").setLevel(logging.ERROR)


@contextlib.contextmanager
def stdout_to_stderr():
    """keras-tuner prints summaries on stdout; the case's log wants them out of the way."""
    import sys

    with contextlib.redirect_stdout(sys.stderr):
        yield


def _datagen():
    spec = importlib.util.spec_from_file_location(
        "kt_bench_datagen", os.path.join(REPO, "tests", "datagen.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blob_columns(n: int, seed: int, features: int = 4, classes: int = 3) -> Dict[str, np.ndarray]:
    """A learnable classification problem shaped like the penguins: `features` floats,
    labels 0..classes-1 (Gaussian blobs around per-class centres)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).random((classes, features), dtype=np.float32)
    label = rng.integers(0, classes, n)
    x = centres[label] + rng.normal(0, 0.15, (n, features)).astype(np.float32)
    columns = {f"f{i}": x[:, i].astype(np.float32) for i in range(features)}
    columns[LABEL] = label.astype(np.int64)
    return columns


def write_blob_examples(root: str, train_rows: int, eval_rows: int, seed: int = 0) -> str:
    """A real Examples artifact (gzipped TFRecords of tf.Example) written by tests/datagen.py."""
    return _datagen().write_examples(root, {"train": blob_columns(train_rows, seed),
                                            "eval": blob_columns(eval_rows, seed + 1)})


def replay_hyperparameters(values: Dict[str, Any]):
    """A HyperParameters that hands `build_model` exactly these values."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hp.values = dict(values)
    return hp


def load_build_model(path: str = PENGUIN_MODULE):
    from kt_core.modules import load_module

    return load_module(path).build_model


def warm_up(data, build_model, batch_size: int) -> None:
    """One throw-away fit so TF's one-time start-up costs land on no side of a comparison."""
    import keras

    model = build_model(replay_hyperparameters({}))
    layout = data.layout_for(model)
    model.fit(data.dataset("train", layout, batch_size), epochs=1, verbose=0,
              validation_data=data.dataset("eval", layout, batch_size))
    del model
    keras.backend.clear_session()


class TimingProbe:
    """Wraps functions to sum their wall time (a measurement only: calls go through
    unchanged); `remove()` puts the originals back. `seconds` is inclusive per label;
    `outer_s` counts nested probed calls once (for "the rest" = total - outer_s)."""

    def __init__(self):
        import collections

        self.seconds = collections.defaultdict(float)
        self.calls = collections.Counter()
        self._undo = []
        self._depth = 0
        self.outer_s = 0.0

    def wrap(self, owner, name, label=None):
        import functools

        original = getattr(owner, name, None)
        if original is None:
            return
        label = label or name

        @functools.wraps(original)
        def timed(*args, **kwargs):
            outermost = self._depth == 0
            self._depth += 1
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self._depth -= 1
                self._record(label, time.perf_counter() - t0, outermost)

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def _record(self, label, elapsed, outermost):
        self.seconds[label] += elapsed
        self.outer_s += elapsed if outermost else 0.0
        self.calls[label] += 1

    def remove(self):
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo = []
