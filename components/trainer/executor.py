"""The Trainer's executor: best hyperparameters in, serving SavedModel out."""

import json
import os
from typing import Any, Dict, List

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from components import common
from kt_core.data import ExamplesData
from kt_core.train import export_serving_model, save_keras_model, train_model

KERAS_MODEL_FILE = "model.keras"


def load_hyperparameters(input_dict):
    """The HyperParameters artifact's single file (ours or the stock Tuner's), else defaults."""
    import keras_tuner

    uri = common.single_uri(input_dict, "hyperparameters")
    if not uri:
        return keras_tuner.HyperParameters()
    path = io_utils.get_only_uri_in_dir(uri)
    return keras_tuner.HyperParameters.from_config(json.loads(io_utils.read_string_file(path)))


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        config = common.config_from_exec_properties(exec_properties)
        module_file = common.local_module_file(exec_properties[common.MODULE_FILE_KEY])
        data = ExamplesData(common.single_uri(input_dict, "examples"),
                            exec_properties[common.LABEL_KEY_KEY], common.schema_path(input_dict),
                            splits=(config.train_split, config.eval_split),
                            image_features=config.image_features)
        model_uri = artifact_utils.get_single_uri(output_dict["model"])
        run_uri = artifact_utils.get_single_uri(output_dict["model_run"])
        trained = train_model(config, load_hyperparameters(input_dict), data, module_file,
                              log_dir=run_uri)
        export_serving_model(trained, data, path_utils.serving_model_path(model_uri),
                             transform_output_dir=common.single_uri(input_dict, "transform_graph"))
        save_keras_model(trained.model, os.path.join(model_uri, KERAS_MODEL_FILE))
