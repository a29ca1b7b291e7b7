"""The example pipeline: ExampleGen -> StatisticsGen -> SchemaGen -> (Transform) ->
Tuner -> Trainer -> Pusher, built by one function for every runner."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional

from kt_core.config import ConfigError

DEFAULT_PIPELINE_NAME = "kt-pipelines"


@dataclasses.dataclass
class GpuSettings:
    """Where the Tuner and Trainer run in a compiled pipeline; other steps stay on CPU.

    `gpu_type` is the accelerator type as the target reads it: a Kubernetes resource
    name on Kubeflow (`nvidia.com/gpu`), an accelerator name on Vertex AI
    (`NVIDIA_TESLA_T4`). `tolerations` are Kubernetes tolerations
    (`{key, operator, value, effect}`).
    """

    gpu_type: str = "nvidia.com/gpu"
    gpus: int = 0
    node_selector: Dict[str, str] = dataclasses.field(default_factory=dict)
    tolerations: List[Dict[str, str]] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or self.gpus < 0:
            raise ConfigError(f"gpus: expected a whole number >= 0, got {self.gpus!r}")
        for t in self.tolerations:
            if t.get("effect") not in (None, "", "NoSchedule", "PreferNoSchedule", "NoExecute"):
                raise ConfigError(f"toleration {t}: effect must be NoSchedule, PreferNoSchedule or NoExecute")

    @property
    def scheduled(self) -> bool:
        return bool(self.gpus or self.node_selector or self.tolerations)


def parse_toleration(text: str) -> Dict[str, str]:
    """`KEY[=VALUE]:EFFECT` -> a Kubernetes toleration."""
    head, sep, effect = text.rpartition(":")
    if not sep or not head:
        raise ConfigError(f"--toleration {text!r}: expected KEY[=VALUE]:EFFECT")
    key, eq, value = head.partition("=")
    toleration = {"key": key, "operator": "Equal" if eq else "Exists", "effect": effect}
    if eq:
        toleration["value"] = value
    GpuSettings(tolerations=[toleration])  # validates the effect
    return toleration


def parse_node_selector(items: List[str]) -> Dict[str, str]:
    selector = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"--node-selector {item!r}: expected KEY=VALUE")
        selector[key] = value
    return selector


def create_pipeline(pipeline_root: str, data_root: str, module_file: str, label_key: str,
                    tuning_config: Optional[Dict[str, Any]] = None,
                    serving_model_dir: Optional[str] = None,
                    pipeline_name: str = DEFAULT_PIPELINE_NAME,
                    data_format: str = "csv",
                    preprocessing_module_file: Optional[str] = None,
                    stock_trainer_module_file: Optional[str] = None,
                    train_steps: Optional[int] = None,
                    metadata_path: Optional[str] = None,
                    beam_pipeline_args: Optional[List[str]] = None):
    """Builds the TFX pipeline; every check that can fail early fails here.

    `data_format`: "csv" (CsvExampleGen) or "tfrecord" (ImportExampleGen over
    tf.Example TFRecords). With `preprocessing_module_file` a Transform step runs and
    Tuner/Trainer work on transformed examples (`label_key` names the transformed
    label). With `stock_trainer_module_file` the stock `tfx.components.Trainer`
    (a module with `run_fn`) consumes our best hyperparameters instead of ours.
    GPU scheduling is added when compiling (see `pipelines.kubeflow`).
    """
    from tfx import v1 as tfx
    from tfx.orchestration import metadata, pipeline

    from components import Trainer, Tuner

    if data_format not in ("csv", "tfrecord"):
        raise ConfigError(f"data_format: expected 'csv' or 'tfrecord', got {data_format!r}")
    if "://" not in data_root and not os.path.isdir(data_root):
        raise ConfigError(f"data root not found: {data_root}")
    example_gen = (tfx.components.CsvExampleGen(input_base=data_root) if data_format == "csv"
                   else tfx.components.ImportExampleGen(input_base=data_root))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=True)
    components = [example_gen, statistics_gen, schema_gen]
    examples, transform_graph = example_gen.outputs["examples"], None
    if preprocessing_module_file:
        transform = tfx.components.Transform(
            examples=examples, schema=schema_gen.outputs["schema"],
            module_file=_checked_file(preprocessing_module_file, "preprocessing module file"))
        components.append(transform)
        examples = transform.outputs["transformed_examples"]
        transform_graph = transform.outputs["transform_graph"]

    train_args = tfx.proto.TrainArgs(num_steps=train_steps) if train_steps else None
    tuner = Tuner(examples=examples, schema=None if transform_graph else schema_gen.outputs["schema"],
                  transform_graph=transform_graph, module_file=module_file, label_key=label_key,
                  tuning_config=tuning_config, train_args=train_args)
    if stock_trainer_module_file:
        trainer = tfx.components.Trainer(
            module_file=_checked_file(stock_trainer_module_file, "trainer module file"),
            examples=examples, schema=schema_gen.outputs["schema"], transform_graph=transform_graph,
            hyperparameters=tuner.outputs["best_hyperparameters"],
            train_args=tfx.proto.TrainArgs(num_steps=train_steps or 20),
            eval_args=tfx.proto.EvalArgs(num_steps=5),
            custom_config={"label_key": label_key})
    else:
        trainer = Trainer(examples=examples,
                          schema=None if transform_graph else schema_gen.outputs["schema"],
                          transform_graph=transform_graph,
                          hyperparameters=tuner.outputs["best_hyperparameters"],
                          module_file=module_file, label_key=label_key,
                          tuning_config=tuning_config, train_args=train_args)
    components += [tuner, trainer]
    if serving_model_dir:
        components.append(tfx.components.Pusher(
            model=trainer.outputs["model"],
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir))))
    return pipeline.Pipeline(
        pipeline_name=pipeline_name, pipeline_root=pipeline_root, components=components,
        enable_cache=False,
        metadata_connection_config=(metadata.sqlite_metadata_connection_config(metadata_path)
                                    if metadata_path else None),
        beam_pipeline_args=beam_pipeline_args or ["--direct_num_workers=1"])


def _checked_file(path: str, what: str) -> str:
    if "://" not in path and not os.path.isfile(path):
        raise ConfigError(f"{what} not found: {path}")
    return path if "://" in path else os.path.abspath(path)
