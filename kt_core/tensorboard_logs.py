"""TensorBoard HParams logs from a search's `tuner_results.json`.

Layout (`tensorboard --logdir OUTPUT/tensorboard`):

    OUTPUT/tensorboard/                 hparams_config: each hyperparameter's domain + metrics
    OUTPUT/tensorboard/trial_<id>/      one session per trial: hp.hparams(values, trial_id=...),
                                        per-epoch scalars (mean over executions), `score`
                                        (at the best epoch), `duration_s`, and the session's
                                        end status (success / failure)

Idempotent: the experiment config is rewritten on every call; a trial's run dir is
rewritten only when its record changed (a `.record.sha256` file next to the
events says which record it holds), so calling this after every trial is cheap.
TensorFlow and tensorboard are imported only when writing.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Dict, List, Optional

from kt_core import report

LOGDIR_NAME = "tensorboard"
_MARKER = ".record.sha256"
_STATUS = {"COMPLETED": "STATUS_SUCCESS", "FAILED": "STATUS_FAILURE",
           "INVALID": "STATUS_FAILURE", "RUNNING": "STATUS_RUNNING", "STOPPED": "STATUS_ABORTED"}
_MAX_DISCRETE = 50  # stepped ranges with more values than this become intervals


def run_name(trial_id: str) -> str:
    return f"trial_{trial_id}"


def write_hparams_logs(output_dir: str, logdir: Optional[str] = None,
                       search: Optional["report.Search"] = None) -> str:
    """Writes (or brings up to date) the HParams logs; returns the logdir."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp_api

    if search is None:
        search = report.load_search(output_dir)
    logdir = logdir or report._join(output_dir, LOGDIR_NAME)
    tf.io.gfile.makedirs(logdir)

    hparams = {name: hp_api.HParam(name, _domain(hp_api, search, name)) for name in search.all_hp_names}
    metric_names = _metric_names(search)
    objective = search.objective or "objective"
    metrics = [hp_api.Metric("score", display_name=f"score ({objective}, {search.direction})",
                             description="the trial's keras-tuner score: its best epoch"),
               hp_api.Metric("duration_s", display_name="duration (s)")]
    metrics += [hp_api.Metric(m, dataset_type=(hp_api.Metric.VALIDATION if m.startswith("val_")
                                               else hp_api.Metric.TRAINING))
                for m in metric_names]

    # The experiment: replace the previous config (the space may have grown).
    for old in tf.io.gfile.glob(report._join(logdir, "events.out.tfevents.*")):
        tf.io.gfile.remove(old)
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        hp_api.hparams_config(hparams=list(hparams.values()), metrics=metrics)
    writer.close()

    for record in search.trials:
        run_dir = report._join(logdir, run_name(record["trial_id"]))
        digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()
        marker = report._join(run_dir, _MARKER)
        if tf.io.gfile.exists(marker):
            with tf.io.gfile.GFile(marker) as f:
                if f.read().strip() == digest:
                    continue
        if tf.io.gfile.exists(run_dir):
            tf.io.gfile.rmtree(run_dir)
        tf.io.gfile.makedirs(run_dir)
        _write_trial(tf, hp_api, run_dir, record, hparams)
        with tf.io.gfile.GFile(marker, "w") as f:
            f.write(digest + "\n")
    return logdir


def _write_trial(tf, hp_api, run_dir: str, record: Dict[str, Any], hparams) -> None:
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import summary as hparams_summary

    values = {}
    for name, value in record["hyperparameters"].items():
        value = _coerce(hparams[name].domain, _tb_value(value)) if name in hparams else None
        if value is not None:
            values[hparams[name]] = value
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default():
        hp_api.hparams(values, trial_id=record["trial_id"])
        for epoch, logs in _mean_epochs(record.get("metrics") or []):
            for name, value in logs.items():
                tf.summary.scalar(name, value, step=epoch)
        if report._is_num(record.get("score")):
            step = record.get("best_step") if isinstance(record.get("best_step"), int) else 0
            tf.summary.scalar("score", record["score"], step=step)
        if report._is_num(record.get("duration_s")):
            tf.summary.scalar("duration_s", record["duration_s"], step=0)
        status = getattr(api_pb2, _STATUS.get(record.get("status"), "STATUS_UNKNOWN"))
        end = hparams_summary.session_end_pb(status)
        tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)
    writer.close()


def _mean_epochs(executions: List[List[Dict[str, Any]]]):
    """(epoch, {metric: mean over executions}) in epoch order."""
    sums: Dict[int, Dict[str, List[float]]] = {}
    for execution in executions:
        for i, logs in enumerate(execution):
            epoch = int(logs.get("epoch", i))
            for name, value in logs.items():
                if name != "epoch" and report._is_num(value):
                    sums.setdefault(epoch, {}).setdefault(name, []).append(float(value))
    for epoch in sorted(sums):
        yield epoch, {name: sum(v) / len(v) for name, v in sums[epoch].items()}


def _metric_names(search: "report.Search") -> List[str]:
    names: List[str] = []
    for record in search.trials:
        for execution in record.get("metrics") or []:
            for logs in execution:
                names.extend(k for k in logs if k != "epoch" and k not in names)
    reserved = {"score", "duration_s"}
    return [n for n in names if n not in reserved]


def _tb_value(value: Any):
    """HParams values are bool, number or string."""
    if value is None:
        return None
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _coerce(domain, value):
    """A value in its domain's dtype (TensorBoard filters and sorts by it)."""
    dtype = getattr(domain, "dtype", None)
    if value is None or dtype is None:
        return value
    if dtype is float and report._is_num(value):
        return float(value)
    if dtype is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if dtype is str and not isinstance(value, str):
        return str(value)
    return value


def _domain(hp_api, search: "report.Search", name: str):
    """The TensorBoard domain of one hyperparameter, from the search space when it
    is known, else from the values the trials used; None when there is no usable one."""
    spec = search.hp_spec(name)
    try:
        if spec is not None:
            c, kind = spec["config"], spec["type"]
            if kind == "Int":
                lo, hi, step = int(c["min_value"]), int(c["max_value"]), int(c.get("step") or 1)
                if step != 1 and (hi - lo) // step < _MAX_DISCRETE:
                    return hp_api.Discrete(list(range(lo, hi + 1, step)))
                return hp_api.IntInterval(lo, hi)
            if kind == "Float":
                lo, hi, step = float(c["min_value"]), float(c["max_value"]), c.get("step")
                if step and (hi - lo) / step < _MAX_DISCRETE and c.get("sampling") in (None, "linear"):
                    n = int(math.floor((hi - lo) / step + 1e-9))
                    return hp_api.Discrete([lo + i * step for i in range(n + 1)])
                return hp_api.RealInterval(lo, hi)
            if kind == "Choice":
                return _discrete(hp_api, c.get("values") or [])
            if kind == "Boolean":
                return hp_api.Discrete([False, True])
            if kind == "Fixed":
                return _discrete(hp_api, [c.get("value")])
        seen = [v for v in (t["hyperparameters"].get(name) for t in search.trials) if v is not None]
        if seen and all(report._is_num(v) for v in seen):
            if all(isinstance(v, int) for v in seen):
                return hp_api.IntInterval(min(seen), max(seen))
            return hp_api.RealInterval(float(min(seen)), float(max(seen)))
        return _discrete(hp_api, list(dict.fromkeys(seen)))
    except (TypeError, ValueError, KeyError):
        return None


def _discrete(hp_api, values: List[Any]):
    values = [_tb_value(v) for v in values if v is not None]
    if not values:
        return None
    if all(report._is_num(v) for v in values) and not all(isinstance(v, int) for v in values):
        values = [float(v) for v in values]  # one dtype: ints and floats mixed become floats
    elif len({type(v) for v in values}) > 1:
        values = [str(v) for v in values]
    return hp_api.Discrete(values)
