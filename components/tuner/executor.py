"""The Tuner's executor: resolves artifacts to paths and runs kt_core's search."""

import os
from typing import Any, Dict, List

import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import common
from kt_core import results as results_lib
from kt_core.search import REPORT_FILE, run_search


class Executor(base_executor.BaseExecutor):

    def Do(self, input_dict: Dict[str, List[types.Artifact]],
           output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        config = common.config_from_exec_properties(exec_properties)
        results_dir = artifact_utils.get_single_uri(output_dict["tuner_results"])
        result = run_search(
            config,
            examples_dir=common.single_uri(input_dict, "examples"),
            label_key=exec_properties[common.LABEL_KEY_KEY],
            output_dir=results_dir,
            module_file=common.local_module_file(exec_properties[common.MODULE_FILE_KEY]),
            schema_path=common.schema_path(input_dict))
        # The HyperParameters artifact holds exactly one file, as the stock Trainer expects.
        best_dir = artifact_utils.get_single_uri(output_dict["best_hyperparameters"])
        tf.io.gfile.makedirs(best_dir)
        tf.io.gfile.copy(os.path.join(result.output_dir, results_lib.BEST_HP_FILE),
                         os.path.join(best_dir, results_lib.BEST_HP_FILE), overwrite=True)
        # The report artifact's URI is the page itself (see components.artifacts).
        report = artifact_utils.get_single_instance(output_dict["report"])
        report_file = os.path.join(result.output_dir, REPORT_FILE)
        if tf.io.gfile.exists(report_file):
            tf.io.gfile.makedirs(os.path.dirname(report.uri))
            tf.io.gfile.copy(report_file, report.uri, overwrite=True)
