"""The one tuning configuration.

A `TuningConfig` is a plain, JSON/YAML-serializable mapping whose keys are named
as keras-tuner names them. The same dict flows unchanged from the CLI
(`--config FILE` + flags) to the TFX component parameter (`tuning_config`) to the
executor, so it is validated in one place, before any training starts, and every
error names the key at fault.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Union

TUNERS = ("random", "grid", "hyperband", "bayesian")
HP_TYPES = ("int", "float", "choice", "boolean", "fixed")
BUILTIN_HYPERMODELS = ("resnet", "xception")
LAUNCHERS = ("local", "kubernetes")

# Which keyword arguments each hyperparameter type accepts (keras-tuner's own names).
_HP_KEYS = {
    "int": {"type", "min_value", "max_value", "step", "sampling", "default"},
    "float": {"type", "min_value", "max_value", "step", "sampling", "default"},
    "choice": {"type", "values", "ordered", "default"},
    "boolean": {"type", "default"},
    "fixed": {"type", "value"},
}
_SAMPLINGS = ("linear", "log", "reverse_log")


class ConfigError(ValueError):
    """A tuning config that cannot run; the message names the key at fault."""


@dataclasses.dataclass
class TuningConfig:
    """Everything a search needs besides the data and the module file."""

    tuner: str = "random"
    # A metric name ("val_accuracy"), or {"name": ..., "direction": "min"|"max"}.
    objective: Union[str, Dict[str, str]] = "val_loss"
    max_trials: int = 10
    executions_per_trial: int = 1
    epochs: int = 10
    # Hyperband only.
    max_epochs: int = 20
    factor: int = 3
    hyperband_iterations: int = 1
    # Bayesian only.
    num_initial_points: Optional[int] = None
    alpha: float = 1e-4
    beta: float = 2.6
    batch_size: int = 32
    seed: Optional[int] = None
    max_consecutive_failed_trials: int = 3
    max_retries_per_trial: int = 0
    max_model_size: Optional[int] = None
    # Seconds a trial may run (build, all executions, all epochs) before it is
    # stopped and recorded as FAILED ("timed out"); null: no limit.
    trial_timeout: Optional[float] = None
    # Restrict / override the search space: {name: {"type": "int", "min_value": ...}}.
    hyperparameters: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    tune_new_entries: bool = True
    allow_new_entries: bool = True
    # Compile overrides (keras-tuner's Tuner(optimizer=, loss=, metrics=)).
    optimizer: Optional[Union[str, Dict[str, Any]]] = None
    loss: Optional[Union[str, Dict[str, Any]]] = None
    metrics: Optional[List[Union[str, Dict[str, Any]]]] = None
    # {"monitor": ..., "patience": ..., "min_delta": ..., "mode": ...} or null.
    early_stopping: Optional[Dict[str, Any]] = None
    # Which model to tune when the module does not say: a HyperModel class or
    # attribute name in the module, or a built-in ("resnet", "xception").
    hypermodel: Optional[str] = None
    hypermodel_args: Dict[str, Any] = dataclasses.field(default_factory=dict)
    # For built-in hypermodels; inferred from the data when not given.
    input_shape: Optional[List[int]] = None
    classes: Optional[int] = None
    # Features holding images: {name: [height, width, channels]} (float arrays or
    # encoded JPEG/PNG bytes).
    image_features: Dict[str, List[int]] = dataclasses.field(default_factory=dict)
    train_split: str = "train"
    eval_split: str = "eval"
    train_steps: Optional[int] = None
    eval_steps: Optional[int] = None
    shuffle: bool = True
    project_name: str = "search"
    # False: resume the search found in the output directory; True: start over.
    overwrite: bool = False
    verbose: int = 0
    # Parallel trials (kt_core/parallel): N workers against one coordinator.
    num_parallel_trials: int = 1
    launcher: str = "local"  # "local" (worker processes) | "kubernetes" (worker pods)
    trials_per_gpu: int = 1  # local launcher: workers packed onto one GPU
    # Stop a trial whose objective is worse than the median of completed trials at the
    # same epoch: {"min_completed_trials": 3, "min_epochs": 1} or null (off).
    median_stopping: Optional[Dict[str, int]] = None
    # Kubernetes launcher: the worker pods' shape (image, gpus, gpu_resource, cpu, memory,
    # node_selector, tolerations, service_account); unset keys come from the Tuner pod.
    worker_pod: Dict[str, Any] = dataclasses.field(default_factory=dict)

    # -- construction -------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Optional[Dict[str, Any]]) -> "TuningConfig":
        """Builds and validates a config; unknown keys are an error, not ignored."""
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown tuning config key(s) {unknown}; known keys: {sorted(known)}"
            )
        config = cls(**data)
        config.validate()
        return config

    @classmethod
    def from_file(cls, path: str) -> Dict[str, Any]:
        """Reads a JSON or YAML config file into a dict (not yet validated)."""
        if not os.path.exists(path):
            raise ConfigError(f"config file not found: {path}")
        with open(path) as f:
            text = f.read()
        if path.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text)
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"config file {path} is not valid JSON: {e}") from e
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping, got {type(data).__name__}")
        return data

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- validation ---------------------------------------------------------

    def validate(self) -> None:
        if self.tuner not in TUNERS:
            raise ConfigError(f"tuner: unknown tuner {self.tuner!r}; choose one of {list(TUNERS)}")
        _check_objective(self.objective)
        for key in ("max_trials", "executions_per_trial", "epochs", "max_epochs",
                    "hyperband_iterations", "batch_size", "max_consecutive_failed_trials"):
            _check_int(key, getattr(self, key), minimum=1)
        _check_int("factor", self.factor, minimum=2)
        _check_int("max_retries_per_trial", self.max_retries_per_trial, minimum=0)
        _check_int("verbose", self.verbose, minimum=0)
        for key in ("seed", "max_model_size", "train_steps", "eval_steps", "classes",
                    "num_initial_points"):
            if getattr(self, key) is not None:
                _check_int(key, getattr(self, key), minimum=0 if key == "seed" else 1)
        if self.trial_timeout is not None:
            _check_number("trial_timeout", self.trial_timeout)
            if not self.trial_timeout > 0:
                raise ConfigError(f"trial_timeout: must be > 0 seconds, got {self.trial_timeout}")
        for key in ("alpha", "beta"):
            if isinstance(getattr(self, key), bool) or not isinstance(getattr(self, key), (int, float)):
                raise ConfigError(f"{key}: expected a number, got {getattr(self, key)!r}")
        for key in ("tune_new_entries", "allow_new_entries", "shuffle", "overwrite"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key}: expected true or false, got {getattr(self, key)!r}")
        for key in ("train_split", "eval_split", "project_name"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"{key}: expected a non-empty string, got {getattr(self, key)!r}")
        if not isinstance(self.hyperparameters, dict):
            raise ConfigError("hyperparameters: expected a mapping of name -> spec")
        for name, spec in self.hyperparameters.items():
            _check_hp(name, spec)
        if not self.tune_new_entries and not self.hyperparameters:
            raise ConfigError(
                "tune_new_entries: false with an empty 'hyperparameters' section leaves "
                "nothing to tune; list the hyperparameters to search"
            )
        if self.tuner == "hyperband" and self.max_epochs < self.factor:
            raise ConfigError(
                f"max_epochs: hyperband needs max_epochs >= factor ({self.max_epochs} < {self.factor})"
            )
        for key in ("optimizer", "loss"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, (str, dict)):
                raise ConfigError(f"{key}: expected a name or a Keras config mapping, got {value!r}")
        if self.metrics is not None:
            if not isinstance(self.metrics, list) or not all(
                isinstance(m, (str, dict)) for m in self.metrics
            ):
                raise ConfigError(f"metrics: expected a list of metric names/configs, got {self.metrics!r}")
        if self.early_stopping is not None:
            _check_early_stopping(self.early_stopping)
        if self.hypermodel is not None and not isinstance(self.hypermodel, str):
            raise ConfigError(f"hypermodel: expected a name, got {self.hypermodel!r}")
        if not isinstance(self.hypermodel_args, dict):
            raise ConfigError("hypermodel_args: expected a mapping")
        if self.input_shape is not None:
            _check_shape("input_shape", self.input_shape)
        if not isinstance(self.image_features, dict):
            raise ConfigError("image_features: expected a mapping of feature name -> [h, w, c]")
        for name, shape in self.image_features.items():
            _check_shape(f"image_features.{name}", shape)
        self._validate_parallel()

    def _validate_parallel(self) -> None:
        _check_int("num_parallel_trials", self.num_parallel_trials, minimum=1)
        _check_int("trials_per_gpu", self.trials_per_gpu, minimum=1)
        if self.launcher not in LAUNCHERS:
            raise ConfigError(f"launcher: must be one of {list(LAUNCHERS)}, got {self.launcher!r}")
        if self.launcher == "kubernetes" and self.trials_per_gpu != 1:
            raise ConfigError("trials_per_gpu: only the local launcher packs workers onto a GPU; "
                              "with launcher 'kubernetes' each worker pod requests worker_pod.gpus")
        if self.median_stopping is not None:
            spec = self.median_stopping
            if not isinstance(spec, dict):
                raise ConfigError("median_stopping: expected a mapping "
                                  "{min_completed_trials, min_epochs} or null")
            extra = sorted(set(spec) - _MEDIAN_STOPPING_KEYS)
            if extra:
                raise ConfigError(f"median_stopping: unknown key(s) {extra}; "
                                  f"allowed: {sorted(_MEDIAN_STOPPING_KEYS)}")
            for key in sorted(spec):
                _check_int(f"median_stopping.{key}", spec[key], minimum=1)
            if self.tuner == "hyperband":
                raise ConfigError("median_stopping: hyperband already stops unpromising trials; "
                                  "use one or the other")
        if not isinstance(self.worker_pod, dict):
            raise ConfigError("worker_pod: expected a mapping")
        _check_worker_pod(self.worker_pod)

    # -- derived ------------------------------------------------------------

    @property
    def objective_name(self) -> str:
        return self.objective if isinstance(self.objective, str) else self.objective["name"]


def merge(base: Dict[str, Any], overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Flags over file: keys in `overrides` whose value is not None win."""
    merged = dict(base)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return merged


def _check_int(key, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {value}")


def _check_shape(key, shape):
    if (not isinstance(shape, (list, tuple)) or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise ConfigError(f"{key}: expected a list of positive integers, got {shape!r}")


def _check_objective(objective):
    if isinstance(objective, str):
        if not objective:
            raise ConfigError("objective: must not be empty")
        return
    if isinstance(objective, dict):
        extra = set(objective) - {"name", "direction"}
        if extra or not isinstance(objective.get("name"), str) or not objective.get("name"):
            raise ConfigError(
                f"objective: expected a metric name or {{name, direction}}, got {objective!r}"
            )
        if objective.get("direction", "min") not in ("min", "max"):
            raise ConfigError(
                f"objective.direction: must be 'min' or 'max', got {objective['direction']!r}"
            )
        return
    raise ConfigError(f"objective: expected a metric name or {{name, direction}}, got {objective!r}")


def _check_number(key, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected a number, got {value!r}")


def _check_hp(name: str, spec: Any) -> None:
    where = f"hyperparameters.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping with a 'type', got {spec!r}")
    hp_type = spec.get("type")
    if hp_type not in HP_TYPES:
        raise ConfigError(f"{where}.type: must be one of {list(HP_TYPES)}, got {hp_type!r}")
    extra = sorted(set(spec) - _HP_KEYS[hp_type])
    if extra:
        raise ConfigError(
            f"{where}: unknown key(s) {extra} for type {hp_type!r}; "
            f"allowed: {sorted(_HP_KEYS[hp_type])}"
        )
    if hp_type in ("int", "float"):
        for key in ("min_value", "max_value"):
            if key not in spec:
                raise ConfigError(f"{where}.{key}: required for type {hp_type!r}")
            if hp_type == "int":
                _check_int(f"{where}.{key}", spec[key], minimum=-(2**63))
            else:
                _check_number(f"{where}.{key}", spec[key])
        if spec["min_value"] > spec["max_value"]:
            raise ConfigError(
                f"{where}: min_value {spec['min_value']} > max_value {spec['max_value']}"
            )
        if spec.get("step") is not None:
            _check_number(f"{where}.step", spec["step"])
            if spec["step"] <= 0:
                raise ConfigError(f"{where}.step: must be > 0, got {spec['step']}")
        if spec.get("sampling", "linear") not in _SAMPLINGS:
            raise ConfigError(f"{where}.sampling: must be one of {list(_SAMPLINGS)}")
        if spec.get("sampling") in ("log", "reverse_log") and spec["min_value"] <= 0:
            raise ConfigError(f"{where}.min_value: must be > 0 for {spec['sampling']} sampling")
        if "default" in spec and spec["default"] is not None:
            _check_number(f"{where}.default", spec["default"])
            if not spec["min_value"] <= spec["default"] <= spec["max_value"]:
                raise ConfigError(f"{where}.default: {spec['default']} is outside [min_value, max_value]")
    elif hp_type == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.values: must be a non-empty list")
        kinds = {type(v) for v in values}
        if len(kinds) > 1 and kinds != {int, float}:
            raise ConfigError(f"{where}.values: must all be of one type, got {values!r}")
        if "default" in spec and spec["default"] is not None and spec["default"] not in values:
            raise ConfigError(f"{where}.default: {spec['default']!r} is not one of the values")
    elif hp_type == "boolean":
        if "default" in spec and not isinstance(spec["default"], bool):
            raise ConfigError(f"{where}.default: expected true or false")
    elif hp_type == "fixed":
        if "value" not in spec:
            raise ConfigError(f"{where}.value: required for type 'fixed'")
        if not isinstance(spec["value"], (int, float, str, bool)):
            raise ConfigError(f"{where}.value: must be a number, string or boolean")


_EARLY_STOPPING_KEYS = {"monitor", "patience", "min_delta", "mode", "restore_best_weights",
                        "start_from_epoch", "baseline"}


def _check_early_stopping(spec):
    if not isinstance(spec, dict):
        raise ConfigError("early_stopping: expected a mapping (EarlyStopping arguments) or null")
    extra = sorted(set(spec) - _EARLY_STOPPING_KEYS)
    if extra:
        raise ConfigError(f"early_stopping: unknown key(s) {extra}; allowed: {sorted(_EARLY_STOPPING_KEYS)}")
    if "patience" in spec:
        _check_int("early_stopping.patience", spec["patience"], minimum=0)
    if spec.get("mode", "auto") not in ("auto", "min", "max"):
        raise ConfigError("early_stopping.mode: must be 'auto', 'min' or 'max'")


_MEDIAN_STOPPING_KEYS = {"min_completed_trials", "min_epochs"}
_WORKER_POD_KEYS = {"image", "gpus", "gpu_resource", "cpu", "memory", "node_selector",
                    "tolerations", "service_account"}


def _check_worker_pod(spec):
    extra = sorted(set(spec) - _WORKER_POD_KEYS)
    if extra:
        raise ConfigError(f"worker_pod: unknown key(s) {extra}; allowed: {sorted(_WORKER_POD_KEYS)}")
    if "gpus" in spec:
        _check_int("worker_pod.gpus", spec["gpus"], minimum=0)
    for key in ("image", "gpu_resource", "service_account"):
        if key in spec and (not isinstance(spec[key], str) or not spec[key]):
            raise ConfigError(f"worker_pod.{key}: expected a non-empty string, got {spec[key]!r}")
    for key in ("cpu", "memory"):
        if key in spec and (isinstance(spec[key], bool) or not isinstance(spec[key], (str, int, float))):
            raise ConfigError(f"worker_pod.{key}: expected a Kubernetes quantity like '4' or '16Gi'")
    selector = spec.get("node_selector", {})
    if not isinstance(selector, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
        raise ConfigError("worker_pod.node_selector: expected a mapping of label -> string value")
    tolerations = spec.get("tolerations", [])
    if not isinstance(tolerations, list) or not all(isinstance(t, dict) for t in tolerations):
        raise ConfigError("worker_pod.tolerations: expected a list of Kubernetes tolerations")
