"""pipeline: the local pipeline (TFX BeamDagRunner) with our Tuner vs the stock Tuner.

ours:  `pipelines.pipeline.create_pipeline` as `kt-pipelines run` builds it:
       CsvExampleGen -> StatisticsGen -> SchemaGen -> our Tuner -> our Trainer.
stock: the same components with `tfx.components.Tuner` and
       benchmarks/stock_tuner_module.py's `tuner_fn` in place of our Tuner (same
       RandomSearch trials, epochs, batch size, seed and model); our Trainer trains the
       best hyperparameters it found.
Each run is a fresh process (`python -m benchmarks.bench_pipeline VARIANT ROOT OUT`),
timed from start to exit, so TFX's start-up counts on both sides; per-component
durations come from the run's ML Metadata store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from benchmarks import common

STOCK_MODULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stock_tuner_module.py")


def _tuning_config(quick):
    trials, epochs = (1, 1) if quick else (6, 10)
    return {"tuner": "random", "objective": "val_accuracy", "max_trials": trials,
            "epochs": epochs, "batch_size": 16, "seed": 7}


def build(variant, root, quick):
    from tfx import v1 as tfx
    from tfx.orchestration import metadata, pipeline

    from components import Trainer
    from pipelines.pipeline import create_pipeline

    config = _tuning_config(quick)
    metadata_path = os.path.join(root, "metadata.sqlite")
    if variant == "ours":
        return create_pipeline(pipeline_root=os.path.join(root, "root"),
                               data_root=common.PENGUIN_CSV, module_file=common.PENGUIN_MODULE,
                               label_key="species", tuning_config=config,
                               pipeline_name="bench-ours", metadata_path=metadata_path)
    # create_pipeline's first steps, then the stock Tuner where ours was.
    example_gen = tfx.components.CsvExampleGen(input_base=common.PENGUIN_CSV)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"],
                                          infer_feature_shape=True)
    tuner = tfx.components.Tuner(module_file=STOCK_MODULE,
                                 examples=example_gen.outputs["examples"],
                                 schema=schema_gen.outputs["schema"],
                                 train_args=tfx.proto.TrainArgs(), eval_args=tfx.proto.EvalArgs(),
                                 custom_config=config)
    trainer = Trainer(examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
                      hyperparameters=tuner.outputs["best_hyperparameters"],
                      module_file=common.PENGUIN_MODULE, label_key="species",
                      tuning_config=config)
    return pipeline.Pipeline(
        pipeline_name="bench-stock", pipeline_root=os.path.join(root, "root"),
        components=[example_gen, statistics_gen, schema_gen, tuner, trainer], enable_cache=False,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(metadata_path),
        beam_pipeline_args=["--direct_num_workers=1"])


def component_seconds(metadata_path):
    """{component type: seconds from registered to published} from ML Metadata."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(config)
    out = {}
    for execution in store.get_executions():
        type_name = store.get_execution_types_by_id([execution.type_id])[0].name
        name = type_name.rsplit(".", 1)[-1]
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        out[name] = round(out.get(name, 0.0) + seconds, 3)
    return out


def _best_values(root):
    from pipelines.local import latest_output

    with open(os.path.join(latest_output(os.path.join(root, "root"), "Tuner",
                                         "best_hyperparameters"), "best_hyperparameters.txt")) as f:
        return json.load(f)["values"]


def _trial_values(root):
    """Every trial's hyperparameter values, sorted (ours: `hyperparameters`; the stock
    Tuner's records carry them at top level next to trial_id and score)."""
    from pipelines.local import latest_output

    with open(os.path.join(latest_output(os.path.join(root, "root"), "Tuner", "tuner_results"),
                           "tuner_results.json")) as f:
        records = json.load(f)
    values = [r.get("hyperparameters") or {k: v for k, v in r.items()
                                           if k not in ("trial_id", "score")} for r in records]
    return sorted(json.dumps(v, sort_keys=True) for v in values)


def _run(variant, quick):
    with tempfile.TemporaryDirectory(prefix=f"kt-bench-pipe-{variant}-") as tmp:
        out = os.path.join(tmp, "run.json")
        cmd = [sys.executable, "-m", "benchmarks.bench_pipeline", variant, tmp, out]
        if quick:
            cmd.append("--quick")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=common.REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"pipeline variant {variant} failed:\n{proc.stderr[-3000:]}")
        with open(out) as f:
            run = json.load(f)
    run["process_s"] = round(wall, 3)
    return run


def pipeline(quick: bool = False):
    stock = _run("stock", quick)
    ours = _run("ours", quick)
    config = _tuning_config(quick)
    ratio = ours["process_s"] / stock["process_s"]
    return common.result(
        "pipeline", ours["process_s"], stock["process_s"],
        ratio_meaning="our pipeline's wall time / the same pipeline with the stock TFX Tuner "
                      "(each a fresh process, start-up included; < 1 means ours is faster)",
        goal="ratio <= 1.0 (ours not slower)", goal_met=ratio <= 1.0,
        ours_run_local_s=ours["run_s"], stock_run_local_s=stock["run_s"],
        ours_components_s=ours["components_s"], stock_components_s=stock["components_s"],
        same_trial_hyperparameters=ours["trials"] == stock["trials"],
        same_best_hyperparameters=ours["best"] == stock["best"],
        best_note="the two read the examples in a different order (stock: tfxio, shuffled "
                  "per file read; ours: in memory, shuffled by index), so scores and the best "
                  "trial may differ; the Trainer then trains a different model",
        tuning=config, data="data/penguins/csv (334 rows; CsvExampleGen splits 2:1)",
        runner="tfx BeamDagRunner, --direct_num_workers=1")


CASES = {"pipeline": pipeline}


def main(argv):
    variant, root, out = argv[0], argv[1], argv[2]
    common.quiet_tensorflow()
    from pipelines.local import run_local

    p = build(variant, root, "--quick" in argv)
    with common.stdout_to_stderr(), common.Clock() as c:
        run_local(p)
    with open(out, "w") as f:
        json.dump({"run_s": round(c.s, 3),
                   "components_s": component_seconds(os.path.join(root, "metadata.sqlite")),
                   "best": _best_values(root), "trials": _trial_values(root)}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
