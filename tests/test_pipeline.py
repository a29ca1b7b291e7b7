"""The example pipeline on TFX's real Beam DAG runner, its compilation, and submission
up to the network call."""

import glob
import json
import os
import subprocess
import sys

import keras_tuner
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, module
from google.protobuf import json_format

from pipelines import cli
from pipelines.local import latest_output, run_local
from pipelines.pipeline import GpuSettings, create_pipeline

CSV_ROOT = os.path.join(REPO, "data", "penguins", "csv")
SMALL = {"max_trials": 2, "epochs": 2, "objective": "val_accuracy", "seed": 1}


def _penguin_examples(rows):
    out = []
    for row in rows:
        feats = {k: tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
                 for k, v in row.items() if k != "species"}
        out.append(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    return out


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    pipeline = create_pipeline(
        pipeline_root=str(root / "root"), data_root=CSV_ROOT,
        module_file=os.path.join(REPO, "pipelines", "penguin_module.py"), label_key="species",
        tuning_config=SMALL, serving_model_dir=str(root / "serving"),
        preprocessing_module_file=module("penguin_preprocessing"),
        metadata_path=str(root / "metadata.sqlite"))
    run_local(pipeline)
    return root


def test_pipeline_end_to_end(pipeline_run):
    """With a Transform step: Tuner and Trainer work on transformed examples; the served
    model takes raw tf.Examples and applies the transform itself."""
    root = str(pipeline_run / "root")
    best_dir = latest_output(root, "Tuner", "best_hyperparameters")
    assert os.listdir(best_dir) == ["best_hyperparameters.txt"]  # the stock Trainer needs one file
    with open(os.path.join(best_dir, "best_hyperparameters.txt")) as f:
        hp = keras_tuner.HyperParameters.from_config(json.load(f))
    results_dir = latest_output(root, "Tuner", "tuner_results")
    with open(os.path.join(results_dir, "tuner_results.json")) as f:
        trials = json.load(f)
    assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
    assert hp.values == max(trials, key=lambda t: t["score"])["hyperparameters"]
    # The search saw the transformed features (dense vector in sorted name order).
    with open(os.path.join(results_dir, "search_config.json")) as f:
        assert json.load(f)["dense_feature_order"] == [
            "body_mass_g_xf", "culmen_depth_mm_xf", "culmen_length_mm_xf", "flipper_length_mm_xf"]
    # Trial logs and checkpoints live in the pipeline root, not a temp dir.
    assert glob.glob(os.path.join(results_dir, "search", "trial_*", "checkpoint*"))

    # The trained SavedModel scores serialized tf.Examples through serving_default.
    model_dir = os.path.join(latest_output(root, "Trainer", "model"), "Format-Serving")
    loaded = tf.saved_model.load(model_dir)
    serve = loaded.signatures["serving_default"]
    import csv

    with open(os.path.join(CSV_ROOT, "penguins_processed.csv")) as f:
        rows = list(csv.DictReader(f))[:40]
    probs = serve(examples=tf.constant(_penguin_examples(rows)))["outputs"].numpy()
    assert probs.shape == (40, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-4)
    accuracy = np.mean(probs.argmax(axis=1) == np.array([int(r["species"]) for r in rows]))
    assert accuracy > 0.5  # trained, not random (3 classes)
    assert os.path.isfile(os.path.join(latest_output(root, "Trainer", "model"), "model.keras"))
    # Pusher pushed it.
    assert os.listdir(pipeline_run / "serving")


def test_stock_trainer_accepts_our_best_hyperparameters(tmp_path):
    pipeline = create_pipeline(
        pipeline_root=str(tmp_path / "root"), data_root=CSV_ROOT,
        module_file=os.path.join(REPO, "pipelines", "penguin_module.py"), label_key="species",
        tuning_config={**SMALL, "max_trials": 1, "epochs": 1},
        stock_trainer_module_file=module("stock_trainer_module"), train_steps=10,
        metadata_path=str(tmp_path / "metadata.sqlite"))
    run_local(pipeline)
    root = str(tmp_path / "root")
    with open(os.path.join(latest_output(root, "Tuner", "best_hyperparameters"),
                           "best_hyperparameters.txt")) as f:
        best = json.load(f)["values"]
    with open(os.path.join(latest_output(root, "Trainer", "model_run"), "hyperparameters_seen.json")) as f:
        seen = json.load(f)
    assert seen == best
    assert os.path.isfile(os.path.join(latest_output(root, "Trainer", "model"), "Format-Serving",
                                       "saved_model.pb"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled") / "pipeline.json"
    code = cli.main(["compile", "--output", str(out), "--image", "registry.example/kt:1.0",
                     "--gpus", "2", "--gpu-type", "nvidia.com/gpu",
                     "--node-selector", "cloud.google.com/gke-accelerator=nvidia-tesla-t4",
                     "--toleration", "nvidia.com/gpu:NoSchedule",
                     "--toleration", "dedicated=tuning:NoExecute",
                     "--pipeline-root", "gs://bucket/root", "--max-trials", "2", "--epochs", "1"])
    assert code == 0
    with open(out) as f:
        return out, json.load(f)


def test_compiled_pipeline_gpu_on_tuner_and_trainer_only(compiled):
    from kfp.pipeline_spec import pipeline_spec_pb2

    path, job = compiled
    spec = pipeline_spec_pb2.PipelineSpec()
    json_format.ParseDict(job["pipelineSpec"], spec)  # strict: the spec protos accept it
    tasks = spec.root.dag.tasks
    assert set(tasks) == {"CsvExampleGen", "StatisticsGen", "SchemaGen", "Tuner", "Trainer"}
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    for name in tasks:
        label = spec.components[tasks[name].component_ref.name].executor_label
        container = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec()
        json_format.ParseDict(json_format.MessageToDict(executors[label].struct_value)["container"],
                              container)
        assert container.image == "registry.example/kt:1.0"
        if name in ("Tuner", "Trainer"):
            assert container.resources.accelerator.type == "nvidia.com/gpu"
            assert container.resources.accelerator.count == 2
        else:
            assert not container.resources.HasField("accelerator")
    # Tuner / Trainer run our executors via TFX's KFP v2 entrypoint.
    tuner_label = spec.components[tasks["Tuner"].component_ref.name].executor_label
    args = json_format.MessageToDict(executors[tuner_label].struct_value)["container"]["args"]
    assert args[:2] == ["--executor_class_path", "components.tuner.executor.Executor"]
    # The search report is an HTML artifact the KFP v2 UI renders, on the Tuner only.
    html_outputs = [(c, name) for c, comp in job["pipelineSpec"]["components"].items()
                    for name, o in comp.get("outputDefinitions", {}).get("artifacts", {}).items()
                    if o["artifactType"].get("schemaTitle") == "system.HTML"]
    assert html_outputs == [("Tuner", "report")]

    platform = pipeline_spec_pb2.PlatformSpec()
    json_format.ParseDict(job["platformSpec"], platform)
    k8s = json_format.MessageToDict(platform.platforms["kubernetes"])["deploymentSpec"]["executors"]
    assert set(k8s) == {"Tuner_executor", "Trainer_executor"}
    for config in k8s.values():
        assert config["nodeSelector"]["labels"] == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
        assert config["tolerations"] == [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "dedicated", "operator": "Equal", "value": "tuning", "effect": "NoExecute"}]
    from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s_pb2

    selector = k8s_pb2.KubernetesExecutorConfig()
    json_format.ParseDict(k8s["Tuner_executor"], selector, ignore_unknown_fields=True)
    assert dict(selector.node_selector.labels) == {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}
    # The tuning config travels unchanged as the component parameter.
    params = json_format.MessageToDict(tasks["Tuner"].inputs)["parameters"]
    config = json.loads(params["tuning_config"]["runtimeValue"]["constantValue"]["stringValue"])
    assert config["max_trials"] == 2 and config["epochs"] == 1


def test_compiled_entrypoint_runs_locally(compiled, tmp_path, penguin_examples):
    """The exact container command of the compiled Tuner task, run in .venv."""
    _, job = compiled
    spec = job["pipelineSpec"]
    container = spec["deploymentSpec"]["executors"]["Tuner_executor"]["container"]
    params = spec["root"]["dag"]["tasks"]["Tuner"]["inputs"]["parameters"]
    values = {k: v["runtimeValue"]["constantValue"]["stringValue"] for k, v in params.items()}
    out = tmp_path / "outputs"
    executor_input = {
        "inputs": {
            "parameters": {k: {"stringValue": v} for k, v in values.items()},
            "artifacts": {"examples": {"artifacts": [{
                "name": "examples", "uri": penguin_examples,
                "type": {"schemaTitle": "tfx.Examples"},
                "metadata": {"split_names": '["train", "eval"]'}}]}}},
        "outputs": {
            "artifacts": {
                "best_hyperparameters": {"artifacts": [{
                    "name": "best", "uri": str(out / "best"), "type": {"schemaTitle": "tfx.HyperParameters"}}]},
                "tuner_results": {"artifacts": [{
                    "name": "results", "uri": str(out / "results"), "type": {"schemaTitle": "tfx.TunerResults"}}]},
                "report": {"artifacts": [{
                    "name": "report", "uri": str(out / "report.html"), "type": {"schemaTitle": "system.HTML"}}]}},
            "outputFile": str(out / "executor_output.json")}}
    command = [sys.executable if c == "python" else c for c in container["command"]]
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    assert container["command"][0] == "python"
    proc = subprocess.run(command + args, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "best" / "best_hyperparameters.txt") as f:
        keras_tuner.HyperParameters.from_config(json.load(f))
    assert len(json.loads((out / "results" / "tuner_results.json").read_text())) == 2
    executor_output = json.loads((out / "executor_output.json").read_text())
    assert "best_hyperparameters" in executor_output["artifacts"]
    # The report artifact's URI is the HTML page itself, as the KFP UI reads system.HTML.
    page = (out / "report.html").read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "plotly" in page


def test_compile_fails_early_on_missing_module(tmp_path, capsys):
    code = cli.main(["compile", "--output", str(tmp_path / "p.json"), "--image", "img",
                     "--module-file", str(tmp_path / "missing.py")])
    assert code == 2
    assert f"module file not found: {tmp_path / 'missing.py'}" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_compile_fails_early_on_invalid_config(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("tuner: random\nhyperparameters: {units: {type: int, min_value: 9, max_value: 1}}\n")
    code = cli.main(["compile", "--output", str(tmp_path / "p.json"), "--image", "img",
                     "--config", str(config)])
    assert code == 2
    assert "hyperparameters.units: min_value 9 > max_value 1" in capsys.readouterr().err


def test_compile_rejects_bad_toleration(tmp_path, capsys):
    code = cli.main(["compile", "--output", str(tmp_path / "p.json"), "--image", "img",
                     "--toleration", "nvidia.com/gpu"])
    assert code == 2 and "KEY[=VALUE]:EFFECT" in capsys.readouterr().err


def test_kfp_package_is_what_kfp_client_reads(compiled, tmp_path):
    from kfp.client import client as kfp_client

    from pipelines.kubeflow import kfp_package

    _, job = compiled
    doc = kfp_client._extract_pipeline_yaml(kfp_package(job, str(tmp_path / "p.yaml")))
    assert "Tuner" in doc.pipeline_spec.root.dag.tasks
    k8s = json_format.MessageToDict(doc.platform_spec.platforms["kubernetes"])
    assert "Tuner_executor" in k8s["deploymentSpec"]["executors"]


def test_submit_kfp_reaches_the_network_call(compiled, capsys):
    """No KFP server runs here: a closed loopback port must give a clear error, exit 1."""
    import socket

    path, _ = compiled
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the with-block ends
    code = cli.main(["submit", str(path), "--kfp-host", f"http://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 1 and f"could not submit to http://127.0.0.1:{port}" in err


def test_vertex_job_built_without_network(compiled):
    from google.auth.credentials import AnonymousCredentials

    from pipelines.kubeflow import vertex_job

    path, _ = compiled
    job = vertex_job(str(path), project="my-project", region="us-central1",
                     pipeline_root="gs://bucket/root", credentials=AnonymousCredentials())
    spec = json_format.MessageToDict(job._gca_resource._pb.pipeline_spec)
    executor = spec["deploymentSpec"]["executors"]["Tuner_executor"]["container"]
    assert executor["resources"]["accelerator"] == {"type": "nvidia.com/gpu", "count": "2"}
    assert job._gca_resource.runtime_config.gcs_output_directory == "gs://bucket/root"


def test_submit_needs_a_target(compiled, capsys):
    path, _ = compiled
    assert cli.main(["submit", str(path)]) == 2
    assert "--kfp-host" in capsys.readouterr().err


def test_run_command_on_users_tfrecords(tmp_path, penguin_examples):
    """`kt-pipelines run` on tf.Example TFRecords (ImportExampleGen), as a user would."""
    kt = os.path.join(os.path.dirname(sys.executable), "kt-pipelines")
    proc = subprocess.run(
        [kt, "run", "--data-root", os.path.join(penguin_examples, "Split-train"),
         "--data-format", "tfrecord", "--module-file", module("mlp_conditional"),
         "--label-key", "species", "--max-trials", "1", "--epochs", "1",
         "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    best = json.loads(lines["best hyperparameters"])
    assert "num_layers" in best
    assert os.path.isfile(os.path.join(lines["trained model"], "saved_model.pb"))
    assert os.path.isdir(lines["pushed model"])
