"""Compiling the pipeline for Kubeflow Pipelines v2 / Vertex AI, and submitting it.

TFX's `KubeflowV2DagRunner` writes a PipelineJob JSON (`displayName, labels,
pipelineSpec, runtimeConfig`). TFX emits no GPU scheduling, so `add_gpu_scheduling`
adds it to the Tuner and Trainer tasks only:
  * `pipelineSpec.deploymentSpec.executors[*].container.resources.accelerator`
    (`{type, count}`: Vertex AI and KFP both read it);
  * a Kubernetes platform config (`platformSpec.platforms.kubernetes`, the
    kfp-kubernetes layout) with the node selector and tolerations, which the KFP
    backend reads; `submit --kfp-host` sends it as the package's platform document.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Iterable, List, Optional

from pipelines.pipeline import GpuSettings

GPU_COMPONENTS = ("Tuner", "Trainer")


def compile_pipeline(pipeline, output: str, image: str, gpu: Optional[GpuSettings] = None) -> Dict:
    """Writes the PipelineJob JSON to `output` and returns it."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

    if not image:
        raise ValueError("image: required (the container image that runs the components)")
    out_dir, filename = os.path.split(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    runner = v2.KubeflowV2DagRunner(
        config=v2.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=out_dir, output_filename=filename)
    runner.run(pipeline, write_out=True)
    with open(output) as f:
        job = json.load(f)
    show_reports_in_ui(job)
    if gpu is not None and gpu.scheduled:
        add_gpu_scheduling(job, gpu)
    with open(output, "w") as f:
        json.dump(job, f, indent=2, sort_keys=True)
    return job


def show_reports_in_ui(job: Dict) -> None:
    """Types our HtmlReport outputs `system.HTML` (the KFP UI renders those) and runs
    those tasks through our entrypoint, which maps the type back (components.kfp_entrypoint)."""
    from components.artifacts import KFP_HTML_TITLE, HtmlReport

    spec = job["pipelineSpec"]
    executors = spec["deploymentSpec"]["executors"]
    for component in spec["components"].values():
        outputs = component.get("outputDefinitions", {}).get("artifacts", {})
        reports = [o for o in outputs.values()
                   if HtmlReport.TYPE_NAME in json.dumps(o.get("artifactType", {}))]
        for output in reports:
            output["artifactType"] = {"schemaTitle": KFP_HTML_TITLE, "schemaVersion": "0.0.1"}
        if reports:
            container = executors[component["executorLabel"]]["container"]
            container["command"] = ["python", "-m", "components.kfp_entrypoint"]


def executor_labels(job: Dict, components: Iterable[str]) -> Dict[str, str]:
    """{task name: executor label} for the named components' tasks."""
    spec = job["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    labels = {}
    for name in components:
        if name not in tasks:
            raise KeyError(f"no task {name!r} in the compiled pipeline (tasks: {sorted(tasks)})")
        component_ref = tasks[name]["componentRef"]["name"]
        labels[name] = spec["components"][component_ref]["executorLabel"]
    return labels


def add_gpu_scheduling(job: Dict, gpu: GpuSettings, components: Iterable[str] = GPU_COMPONENTS) -> None:
    executors = job["pipelineSpec"]["deploymentSpec"]["executors"]
    k8s_executors = {}
    for task, label in executor_labels(job, components).items():
        if gpu.gpus:
            resources = executors[label]["container"].setdefault("resources", {})
            resources["accelerator"] = {"type": gpu.gpu_type, "count": str(gpu.gpus)}
        config: Dict[str, Any] = {}
        if gpu.node_selector:
            config["nodeSelector"] = {"labels": dict(gpu.node_selector)}
        if gpu.tolerations:
            config["tolerations"] = [dict(t) for t in gpu.tolerations]
        if config:
            k8s_executors[label] = config
    if k8s_executors:
        job["platformSpec"] = {"platforms": {"kubernetes": {"deploymentSpec": {"executors": k8s_executors}}}}


def kfp_package(job: Dict, path: str) -> str:
    """The PipelineJob as a KFP v2 package: pipeline spec, then the platform spec document."""
    import yaml

    docs = [job["pipelineSpec"]]
    if job.get("platformSpec"):
        docs.append(job["platformSpec"])
    with open(path, "w") as f:
        yaml.safe_dump_all(docs, f, sort_keys=True)
    return path


def load_job(path: str) -> Dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"compiled pipeline not found: {path}")
    with open(path) as f:
        job = json.load(f)
    if "pipelineSpec" not in job:
        raise ValueError(f"{path} is not a PipelineJob JSON (no pipelineSpec)")
    return job


def submit_kfp(path: str, host: str, run_name: Optional[str] = None,
               experiment: Optional[str] = None, namespace: Optional[str] = None):
    """Creates a run on a Kubeflow Pipelines endpoint (network call)."""
    import kfp

    job = load_job(path)
    package = kfp_package(job, os.path.join(tempfile.mkdtemp(prefix="kt_kfp_"), "pipeline.yaml"))
    client = kfp.Client(host=host, namespace=namespace)
    return client.create_run_from_pipeline_package(
        package, arguments={}, run_name=run_name or job.get("displayName"),
        experiment_name=experiment, namespace=namespace)


def vertex_job(path: str, project: str, region: str, pipeline_root: Optional[str] = None,
               service_account: Optional[str] = None, credentials=None):
    """The Vertex AI PipelineJob for the compiled JSON (no network until `.submit()`)."""
    from google.cloud import aiplatform

    load_job(path)
    return aiplatform.PipelineJob(
        display_name=os.path.splitext(os.path.basename(path))[0], template_path=path,
        pipeline_root=pipeline_root, project=project, location=region,
        credentials=credentials, enable_caching=False)


def submit_vertex(path: str, project: str, region: str, pipeline_root: Optional[str] = None,
                  service_account: Optional[str] = None):
    job = vertex_job(path, project, region, pipeline_root)
    job.submit(service_account=service_account)
    return job
