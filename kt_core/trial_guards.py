"""Stopping a trial that cannot give a usable answer, so that the search goes on.

keras-tuner records a trial as FAILED, without retrying it, when its training
raises `keras_tuner.errors.FailedTrialError`. The guards here raise it from inside
`model.fit`:

* `NonFiniteGuard`: the loss or the objective became NaN or infinite. keras-tuner
  only invalidates a NaN *objective*; a model whose loss diverged can still report
  a finite accuracy and would otherwise be a candidate for best.
* `TrialDeadline`: the trial has run longer than `trial_timeout` seconds (counted
  from the trial's start: build, every execution and epoch). Checked before every
  training and validation batch and after every epoch, so a slow trial stops
  within one batch of its deadline instead of holding the accelerator. A build
  or a single batch that never returns is not interrupted (that needs a process
  boundary).
"""

from __future__ import annotations

import math
import time
from typing import Iterable, List, Optional


def _failed_trial_error():
    from keras_tuner import errors

    return errors.FailedTrialError


def guards(objective_names: Iterable[str], started_at: float,
           trial_timeout: Optional[float]) -> List:
    """The callbacks one execution of a trial trains with."""
    callbacks = [NonFiniteGuard(objective_names)]
    if trial_timeout:
        callbacks.append(TrialDeadline(started_at, trial_timeout))
    return callbacks


def _callback_base():
    import keras

    return keras.callbacks.Callback


class NonFiniteGuard(_callback_base()):
    """Fails the trial at the end of the first epoch whose loss or objective is NaN/inf."""

    def __init__(self, objective_names: Iterable[str]):
        super().__init__()
        self.watched = ["loss", "val_loss"] + [n for n in objective_names
                                               if n not in ("loss", "val_loss")]

    def on_epoch_end(self, epoch, logs=None):
        for name in self.watched:
            value = (logs or {}).get(name)
            if value is not None and not math.isfinite(float(value)):
                raise _failed_trial_error()(
                    f"{name} is {float(value)} after epoch {epoch + 1}: training diverged "
                    "(trial not scored; lower the learning rate or check the data)")


class TrialDeadline(_callback_base()):
    """Fails the trial once `timeout` seconds have passed since `started_at`."""

    def __init__(self, started_at: float, timeout: float):
        super().__init__()
        self.started_at = started_at
        self.timeout = timeout

    def _check(self):
        elapsed = time.time() - self.started_at
        if elapsed > self.timeout:
            raise _failed_trial_error()(
                f"trial timed out after {elapsed:.1f}s (trial_timeout: {self.timeout:g}s)")

    # Batch *begin* hooks: Keras always calls them in the training thread (batch end
    # hooks may run on a thread pool), and defining no end hook keeps that option open.
    def on_train_batch_begin(self, batch, logs=None):
        self._check()

    def on_test_batch_begin(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()
