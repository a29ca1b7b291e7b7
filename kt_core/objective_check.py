"""Is the objective among the metrics the model reports? Asked before there is data.

At pipeline compile time there are no examples to evaluate, but the module's
model can be built with default hyperparameters and its compiled metrics named:
Keras names a metric the same whatever the values, so one forward pass on zeros
and the metrics' own naming give the log keys training will report (`loss`,
`accuracy`, ... and their `val_` forms). The objective is rejected only when that
answer is certain; whenever the model cannot be built or named here (a module
that imports packages only the image has, a built-in hypermodel that needs the
data's shape, several outputs), the check is skipped and the search's preflight,
which evaluates real examples, decides.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Optional, Union

from kt_core.config import BUILTIN_HYPERMODELS, ConfigError, TuningConfig
from kt_core.modules import ModuleError

log = logging.getLogger("kt_core")


def check_objective_reported(module_file: Optional[str],
                             tuning_config: Union[str, Dict[str, Any], None]) -> None:
    """Raises ConfigError naming `objective` when the model surely does not report it."""
    if isinstance(tuning_config, str):
        tuning_config = json.loads(tuning_config)
    config = TuningConfig.from_dict(tuning_config or {})
    if (not module_file or module_file in BUILTIN_HYPERMODELS or "://" in module_file
            or config.hypermodel in BUILTIN_HYPERMODELS):
        return
    reported = reported_metrics(module_file, config)
    if reported is None:
        return
    objective = config.objective_name
    if objective not in reported:
        raise ConfigError(f"objective: {objective!r} is not reported by the model {module_file} "
                          f"builds with default hyperparameters; it reports {reported}")


def reported_metrics(module_file: str, config: TuningConfig) -> Optional[List[str]]:
    """The log keys fit() will report, or None when they cannot be known here."""
    from kt_core.modules import resolve_hypermodel

    try:
        hypermodel = resolve_hypermodel(module_file, config.hypermodel, config.hypermodel_args,
                                        config.input_shape, config.classes)
    except ModuleError as e:
        if isinstance(e.__cause__, ImportError):  # e.g. a package only the image has
            log.warning("objective check skipped at compile time: %s", e)
            return None
        raise
    import keras

    from kt_core.search import search_space

    try:
        model = hypermodel.build(search_space(config))
        names = _metric_names(model, config)
    except Exception as e:  # the default values may legitimately fail; the search will say
        log.warning("objective check skipped at compile time: building %s with default "
                    "hyperparameters raised %s: %s", module_file, type(e).__name__, e)
        return None
    finally:
        keras.backend.clear_session()
    if names is None:
        return None
    return sorted(set(names) | {"val_" + n for n in names})


def _metric_names(model, config: TuningConfig) -> Optional[List[str]]:
    import keras
    import numpy as np

    if not isinstance(model, keras.Model):
        return None
    compiled = getattr(model, "compiled", False)
    if config.metrics:  # keras-tuner recompiles with the config's metrics; the loss is "loss"
        if not (compiled or (config.optimizer and config.loss)):
            return None
        model.compile(optimizer="sgd", loss=config.loss if isinstance(config.loss, str)
                      else (model.loss or "mse"),
                      metrics=[m if isinstance(m, str) else keras.metrics.deserialize(m)
                               for m in config.metrics])
    elif not compiled:
        return None
    inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    if len(outputs) != 1 or not inputs:
        return None
    shapes = [tuple(t.shape[1:]) for t in inputs]
    if any(d is None for s in shapes for d in s) or any(
            "string" in str(t.dtype) for t in inputs):
        return None
    x = [np.zeros((1,) + s, dtype=str(t.dtype)) for s, t in zip(shapes, inputs)]
    names_in = [t.name.split(":")[0] for t in inputs]
    feed = dict(zip(names_in, x)) if len(x) > 1 and len(set(names_in)) == len(x) else x
    y_pred = model(feed if len(x) > 1 else x[0], training=False)
    names = ["loss"]
    compiled_metrics = getattr(model, "_compile_metrics", None)
    if compiled_metrics is not None:
        compiled_metrics.build(np.zeros(y_pred.shape, dtype="float32"), y_pred)
        names += list(compiled_metrics.result().keys())
    return names
