"""What the Tuner and Trainer declare alike: the same parameters, the same data inputs."""

from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import common

# module_file, label_key and tuning_config are the same values for both components.
PARAMETERS = {
    common.MODULE_FILE_KEY: ExecutionParameter(type=str),
    common.LABEL_KEY_KEY: ExecutionParameter(type=str),
    common.TUNING_CONFIG_KEY: ExecutionParameter(type=str),
    "train_args": ExecutionParameter(type=trainer_pb2.TrainArgs, optional=True),
    "eval_args": ExecutionParameter(type=trainer_pb2.EvalArgs, optional=True),
}

DATA_INPUTS = {
    "examples": ChannelParameter(type=standard_artifacts.Examples),
    "schema": ChannelParameter(type=standard_artifacts.Schema, optional=True),
    "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph, optional=True),
}
