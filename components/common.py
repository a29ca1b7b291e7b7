"""What both executors do with their inputs and parameters, and what both declarations check."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List, Optional, Union

from kt_core.config import ConfigError, TuningConfig
from kt_core.modules import ModuleError, is_builtin, is_module_name, module_path

TUNING_CONFIG_KEY = "tuning_config"
MODULE_FILE_KEY = "module_file"
LABEL_KEY_KEY = "label_key"


def tuning_config_param(tuning_config: Union[None, str, Dict[str, Any]]) -> str:
    """Validates the config at pipeline construction and stores it as JSON."""
    if isinstance(tuning_config, str):
        try:
            tuning_config = json.loads(tuning_config)
        except json.JSONDecodeError as e:
            raise ConfigError(f"tuning_config: not valid JSON: {e}") from e
    return TuningConfig.from_dict(tuning_config or {}).to_json()


def check_module_file(module_file: Optional[str]) -> str:
    """Fails at pipeline construction, not hours later on the cluster."""
    if not module_file:
        raise ModuleError("module_file: required (a module path, or 'resnet' / 'xception')")
    if is_builtin(module_file) or "://" in module_file:
        return module_file  # remote paths are checked by the executor where they are read
    module_path(module_file)  # raises naming the file when it does not exist
    return module_file if is_module_name(module_file) and not os.path.isfile(module_file) \
        else os.path.abspath(module_file)


def local_module_file(module_file: str) -> str:
    """A remote (gs://, s3://) module file copied next to the executor."""
    if is_builtin(module_file) or "://" not in module_file:
        return module_file
    import tensorflow as tf

    if not tf.io.gfile.exists(module_file):
        raise ModuleError(f"module file not found: {module_file}")
    local = os.path.join(tempfile.mkdtemp(prefix="kt_module_"), os.path.basename(module_file))
    tf.io.gfile.copy(module_file, local, overwrite=True)
    return local


def config_from_exec_properties(exec_properties: Dict[str, Any]) -> TuningConfig:
    """The component's tuning_config, with train/eval splits and steps from TrainArgs/EvalArgs."""
    from tfx.proto import trainer_pb2
    from tfx.utils import proto_utils

    config = json.loads(exec_properties.get(TUNING_CONFIG_KEY) or "{}")
    for key, proto_cls, split_key, steps_key in (
            ("train_args", trainer_pb2.TrainArgs, "train_split", "train_steps"),
            ("eval_args", trainer_pb2.EvalArgs, "eval_split", "eval_steps")):
        raw = exec_properties.get(key)
        if not raw:
            continue
        args = proto_cls()
        proto_utils.json_to_proto(raw, args) if isinstance(raw, str) else args.CopyFrom(raw)
        if len(args.splits) > 1:
            raise ConfigError(f"{key}.splits: one split expected, got {list(args.splits)}")
        if args.splits:
            config[split_key] = args.splits[0]
        if args.num_steps:
            config[steps_key] = args.num_steps
    return TuningConfig.from_dict(config)


def single_uri(input_dict, key: str) -> Optional[str]:
    from tfx.types import artifact_utils

    artifacts: List = input_dict.get(key) or []
    return artifact_utils.get_single_uri(artifacts) if artifacts else None


def schema_path(input_dict) -> Optional[str]:
    """The transform graph's output schema when tuning on transformed examples, else the schema."""
    from tfx.utils import io_utils

    transform_uri = single_uri(input_dict, "transform_graph")
    if transform_uri:
        return os.path.join(transform_uri, "transformed_metadata", "schema.pbtxt")
    schema_uri = single_uri(input_dict, "schema")
    return io_utils.get_only_uri_in_dir(schema_uri) if schema_uri else None
