"""The Trainer component: trains the module's model with the best hyperparameters."""

from typing import Any, Dict, Optional, Union

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec

from components import common, specs
from components.trainer import executor


class TrainerSpec(ComponentSpec):
    PARAMETERS = dict(specs.PARAMETERS)
    INPUTS = {
        **specs.DATA_INPUTS,
        "hyperparameters": ChannelParameter(type=standard_artifacts.HyperParameters, optional=True),
    }
    OUTPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_run": ChannelParameter(type=standard_artifacts.ModelRun),
    }


class Trainer(base_component.BaseComponent):
    """Trains `build_model(hp)` with the Tuner's best hyperparameters; no `run_fn` needed.

    Inputs: `examples`, `schema` / `transform_graph` (optional, as for the Tuner),
    `hyperparameters` (a `HyperParameters` artifact: ours or the stock Tuner's;
    without it the module's defaults are used).

    Parameters: `module_file`, `label_key`, `tuning_config` (the same dict given to the
    Tuner: epochs, batch size, compile overrides, early stopping), `train_args` /
    `eval_args` (splits and steps per epoch).

    Outputs: `model` — `Format-Serving/`, a SavedModel whose `serving_default`
    signature takes serialized `tf.Example`s (TF Serving, Evaluator, Pusher), and
    `model.keras`, the Keras model file; `model_run` — TensorBoard logs.
    """

    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, module_file: str, label_key: str,
                 tuning_config: Union[None, str, Dict[str, Any]] = None,
                 hyperparameters: Optional[types.BaseChannel] = None,
                 schema: Optional[types.BaseChannel] = None,
                 transform_graph: Optional[types.BaseChannel] = None,
                 train_args: Optional[trainer_pb2.TrainArgs] = None,
                 eval_args: Optional[trainer_pb2.EvalArgs] = None):
        spec = TrainerSpec(
            examples=examples, schema=schema, transform_graph=transform_graph,
            hyperparameters=hyperparameters,
            module_file=common.check_module_file(module_file), label_key=label_key,
            tuning_config=common.tuning_config_param(tuning_config),
            train_args=train_args, eval_args=eval_args,
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun))
        super().__init__(spec=spec)
