"""The search's outputs, written so that a reader never sees a half-written file.

* `best_hyperparameters.txt`: JSON of `keras_tuner.HyperParameters.get_config()`,
  byte-for-byte what the stock TFX Tuner writes, so the stock Trainer reads it.
* `tuner_results.json`: one record per trial, failed ones included. Each record
  carries the stock TFX Tuner's keys (`trial_id`, `score`, the hyperparameter
  values flattened at top level) plus `status`, `hyperparameters`, `metrics`
  (per-epoch, per execution), `duration_s`, `error`. Rewritten as each trial ends.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Dict, List, Optional

BEST_HP_FILE = "best_hyperparameters.txt"
RESULTS_FILE = "tuner_results.json"
SEARCH_CONFIG_FILE = "search_config.json"


def atomic_write(path: str, text: str) -> None:
    """Write-then-rename: readers see the old file or the new one, never a torn one.
    Local paths use plain file calls (they let go of the GIL while writing, so the
    coordinator serves requests meanwhile); others (gs://, ...) go through tf.io.gfile."""
    tmp = f"{path}.tmp-{os.getpid()}"
    if "://" not in path:
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        return
    import tensorflow as tf

    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def _number(value):
    """JSON has no NaN/inf: they become null (and such a trial is never best)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class TrialRecorder:
    """Collects per-trial facts the oracle does not keep (epochs, timing, errors)."""

    def __init__(self, results_path: str, resume: bool = True):
        self.results_path = results_path
        self.records: Dict[str, Dict[str, Any]] = {}
        self._order: List[str] = []
        self._epochs: Dict[str, List[List[Dict[str, float]]]] = {}
        self._start: Dict[str, float] = {}
        import tensorflow as tf

        if resume and tf.io.gfile.exists(results_path):  # keep what earlier runs recorded
            with tf.io.gfile.GFile(results_path) as f:
                for record in json.load(f):
                    self.records[record["trial_id"]] = record
                    self._order.append(record["trial_id"])

    def trial_begin(self, trial_id: str) -> None:
        self._start[trial_id] = time.time()
        self._epochs[trial_id] = []

    def started_at(self, trial_id: str) -> float:
        """When the trial began (now, for a trial this recorder did not see begin)."""
        return self._start.setdefault(trial_id, time.time())

    def execution_begin(self, trial_id: str) -> None:
        self._epochs.setdefault(trial_id, []).append([])

    def epoch_end(self, trial_id: str, epoch: int, logs: Optional[Dict[str, float]]) -> None:
        executions = self._epochs.setdefault(trial_id, [[]])
        if not executions:
            executions.append([])
        executions[-1].append({"epoch": epoch, **{k: _number(v) for k, v in (logs or {}).items()}})

    def trial_end(self, trial) -> Dict[str, Any]:
        """Records a finished trial (any status) and rewrites the results file."""
        trial_id = trial.trial_id
        values = dict(trial.hyperparameters.values)
        error = None
        if trial.message:
            lines = [ln for ln in trial.message.strip().splitlines() if ln.strip()]
            error = lines[-1] if lines else trial.message
        record = {
            "trial_id": trial_id,
            "score": _number(trial.score),
            **values,
            "status": trial.status,
            "hyperparameters": values,
            "best_step": trial.best_step,
            "metrics": self._epochs.get(trial_id, []),
            "duration_s": round(time.time() - self._start.get(trial_id, time.time()), 3),
            "error": error,
        }
        if trial_id not in self.records:
            self._order.append(trial_id)
        self.records[trial_id] = record
        self.write()
        return record

    def ordered(self) -> List[Dict[str, Any]]:
        """The records in the order their trials first ended."""
        return [self.records[t] for t in self._order]

    def write(self) -> None:
        atomic_write(self.results_path, records_json(self.ordered()))


def records_json(records: List[Dict[str, Any]]) -> str:
    """The text of tuner_results.json."""
    return json.dumps(records, indent=1, default=str)


def remove_outputs(output_dir: str, names) -> None:
    """A search that starts over first removes the previous search's results, so
    that if it is interrupted nothing left behind names a trial it did not run."""
    import tensorflow as tf

    for name in names:
        path = os.path.join(output_dir, name)
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        elif tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)


def write_best_hyperparameters(path: str, hyperparameters) -> None:
    atomic_write(path, json.dumps(hyperparameters.get_config()))


def load_results(path: str) -> List[Dict[str, Any]]:
    import tensorflow as tf

    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
