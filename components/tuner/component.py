"""The Tuner component: keras-tuner search over a module's `build_model(hp)`."""

from typing import Any, Dict, Optional, Union

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec

from components import artifacts, common, specs
from components.tuner import executor
from kt_core.objective_check import check_objective_reported


class TunerSpec(ComponentSpec):
    PARAMETERS = dict(specs.PARAMETERS)
    INPUTS = dict(specs.DATA_INPUTS)
    OUTPUTS = {
        "best_hyperparameters": ChannelParameter(type=standard_artifacts.HyperParameters),
        "tuner_results": ChannelParameter(type=standard_artifacts.TunerResults),
        "report": ChannelParameter(type=artifacts.HtmlReport),
    }


class Tuner(base_component.BaseComponent):
    """Searches hyperparameters with keras-tuner; no `tuner_fn` needed.

    Inputs: `examples` (required), `schema` (optional; otherwise the feature spec is
    inferred from the records), `transform_graph` (optional: then `examples` are the
    Transform's transformed examples and the feature spec is its output schema).

    Parameters: `module_file` (a module with `build_model(hp)` or `hypermodel`, or
    `resnet` / `xception`), `label_key`, `tuning_config` (the kt_core config dict:
    tuner, objective, max_trials, hyperparameters, ...), `train_args` / `eval_args`
    (splits, and `num_steps` as steps per epoch), as in the stock TFX Tuner.

    Outputs: `best_hyperparameters` (a `HyperParameters` artifact holding
    `best_hyperparameters.txt`, the same file the stock Tuner writes: the stock TFX
    Trainer accepts it) and `tuner_results` (`TunerResults`: `tuner_results.json`,
    the search's trial logs and checkpoints, TensorBoard HParams logs, kept in the
    pipeline root) and `report` (the search's HTML report; compiled for KFP as a
    `system.HTML` artifact, so the KFP v2 UI shows it).
    """

    SPEC_CLASS = TunerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, module_file: str, label_key: str,
                 tuning_config: Union[None, str, Dict[str, Any]] = None,
                 schema: Optional[types.BaseChannel] = None,
                 transform_graph: Optional[types.BaseChannel] = None,
                 train_args: Optional[trainer_pb2.TrainArgs] = None,
                 eval_args: Optional[trainer_pb2.EvalArgs] = None):
        spec = TunerSpec(
            examples=examples, schema=schema, transform_graph=transform_graph,
            module_file=common.check_module_file(module_file), label_key=label_key,
            tuning_config=common.tuning_config_param(tuning_config),
            train_args=train_args, eval_args=eval_args,
            best_hyperparameters=types.Channel(type=standard_artifacts.HyperParameters),
            tuner_results=types.Channel(type=standard_artifacts.TunerResults),
            report=types.Channel(type=artifacts.HtmlReport))
        # An objective the model does not report fails here, at compile time, not on the cluster.
        check_objective_reported(spec.exec_properties[common.MODULE_FILE_KEY],
                                 spec.exec_properties[common.TUNING_CONFIG_KEY])
        super().__init__(spec=spec)
