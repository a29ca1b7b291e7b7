"""`kt-pipelines`: tune, run the pipeline locally, compile it for Kubeflow / Vertex AI, submit it.

Every heavy import is inside a subcommand, so `kt-pipelines --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from kt_core.cli import add_tune_parser, add_tuning_flags, run_command, tuning_config_dict
from kt_core.results_cli import add_results_parser

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_DATA = os.path.join(REPO_ROOT, "data", "penguins", "csv")
DEMO_MODULE = os.path.join(REPO_ROOT, "pipelines", "penguin_module.py")
DEMO_CONFIG = os.path.join(REPO_ROOT, "pipelines", "penguin_tuning.yaml")
# Inside the image the demo module is importable by name (the package is installed).
DEMO_MODULE_IN_IMAGE = "pipelines.penguin_module"


def _add_pipeline_flags(p, module_default=None, data_default=None) -> None:
    p.add_argument("--data-root", dest="data_root", default=data_default,
                   required=data_default is None, help="CSV files or tf.Example TFRecords")
    p.add_argument("--data-format", dest="data_format", choices=("csv", "tfrecord"), default="csv")
    p.add_argument("--module-file", dest="module_file", default=module_default,
                   required=module_default is None,
                   help="module file path, importable module name, or 'resnet'/'xception'")
    p.add_argument("--label-key", dest="label_key", default="species" if module_default else None,
                   required=module_default is None)
    p.add_argument("--preprocessing-module-file", dest="preprocessing_module_file",
                   help="module with preprocessing_fn: adds a Transform step")
    p.add_argument("--pipeline-name", dest="pipeline_name", default="kt-pipelines")
    add_tuning_flags(p)


def _pipeline_from_args(args, pipeline_root, serving_model_dir, metadata_path=None):
    from pipelines.pipeline import create_pipeline

    base = None
    if not args.config and args.module_file in (DEMO_MODULE, DEMO_MODULE_IN_IMAGE):
        from kt_core.config import TuningConfig

        base = TuningConfig.from_file(DEMO_CONFIG)
    return create_pipeline(
        pipeline_root=pipeline_root, data_root=args.data_root, module_file=args.module_file,
        label_key=args.label_key, tuning_config=tuning_config_dict(args, base),
        serving_model_dir=serving_model_dir, pipeline_name=args.pipeline_name,
        data_format=args.data_format, preprocessing_module_file=args.preprocessing_module_file,
        metadata_path=metadata_path)


def _cmd_run(args) -> int:
    from pipelines.local import run_local, summary

    root = os.path.abspath(args.output_dir)
    pipeline_root = os.path.join(root, "pipeline-root")
    serving = os.path.join(root, "serving")
    run_local(_pipeline_from_args(args, pipeline_root, serving,
                                  metadata_path=os.path.join(root, "metadata.sqlite")))
    facts = summary(pipeline_root, serving)
    print("best hyperparameters: " + json.dumps(facts["best_hyperparameters"], sort_keys=True))
    print(f"tuner results: {facts['tuner_results']}")
    print(f"trained model: {facts['model']}")
    if "pushed_model" in facts:
        print(f"pushed model: {facts['pushed_model']}")
    return 0


def _gpu_from_args(args):
    from pipelines.pipeline import GpuSettings, parse_node_selector, parse_toleration

    return GpuSettings(gpu_type=args.gpu_type, gpus=args.gpus,
                       node_selector=parse_node_selector(args.node_selector),
                       tolerations=[parse_toleration(t) for t in args.toleration])


def _cmd_compile(args) -> int:
    from pipelines.kubeflow import compile_pipeline

    gpu = _gpu_from_args(args)
    pipeline = _pipeline_from_args(args, args.pipeline_root, args.serving_model_dir)
    compile_pipeline(pipeline, args.output, args.image, gpu)
    print(f"compiled pipeline: {args.output}")
    return 0


def _cmd_submit(args) -> int:
    from pipelines import kubeflow

    if bool(args.kfp_host) == bool(args.vertex):
        raise SubmitError("give either --kfp-host URL or --vertex --project P --region R")
    try:
        kubeflow.load_job(args.pipeline)
    except (FileNotFoundError, ValueError, json.JSONDecodeError) as e:
        raise SubmitError(str(e)) from None
    try:
        if args.kfp_host:
            run = kubeflow.submit_kfp(args.pipeline, args.kfp_host, args.run_name,
                                      args.experiment, args.namespace)
            print(f"submitted run: {getattr(run, 'run_id', run)}")
        else:
            if not (args.project and args.region):
                raise SubmitError("--vertex needs --project and --region")
            job = kubeflow.submit_vertex(args.pipeline, args.project, args.region,
                                         args.pipeline_root, args.service_account)
            print(f"submitted Vertex AI pipeline job: {job.resource_name}")
    except SubmitError:
        raise
    except Exception as e:  # the network or the server said no: one line, exit 1
        target = args.kfp_host or f"Vertex AI ({args.project}/{args.region})"
        print(f"kt-pipelines: error: could not submit to {target}: {type(e).__name__}: "
              f"{str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
        return 1
    return 0


class SubmitError(ValueError):
    pass


def _cmd_demo(args) -> int:
    args.data_root, args.module_file, args.label_key = DEMO_DATA, DEMO_MODULE, "species"
    args.data_format, args.preprocessing_module_file, args.pipeline_name = "csv", None, "kt-demo"
    args.config = None
    for key in ("tuner", "objective", "max_trials", "epochs", "max_epochs",
                "executions_per_trial", "batch_size", "seed"):
        setattr(args, key, None)
    args.overwrite = True
    return _cmd_run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kt-pipelines",
        description="Hyperparameter search with keras-tuner as TFX / Kubeflow pipeline components.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_tune_parser(sub)

    run = sub.add_parser("run", help="run the pipeline locally (TFX BeamDagRunner) on your data")
    _add_pipeline_flags(run)
    run.add_argument("--output-dir", dest="output_dir", default="pipeline-output",
                     help="pipeline root, metadata and pushed model go here")
    run.set_defaults(func=_cmd_run)

    comp = sub.add_parser("compile", help="compile a KFP v2 / Vertex AI PipelineJob JSON")
    comp.add_argument("--output", required=True, help="PipelineJob JSON to write")
    comp.add_argument("--image", required=True, help="container image running the components")
    comp.add_argument("--gpu-type", dest="gpu_type", default="nvidia.com/gpu",
                      help="accelerator type: nvidia.com/gpu (Kubeflow) or e.g. NVIDIA_TESLA_T4 (Vertex)")
    comp.add_argument("--gpus", type=int, default=0, help="GPUs for the Tuner and Trainer tasks")
    comp.add_argument("--node-selector", dest="node_selector", action="append", default=[],
                      metavar="KEY=VALUE", help="node label the Tuner/Trainer pods require")
    comp.add_argument("--toleration", action="append", default=[], metavar="KEY[=VALUE]:EFFECT",
                      help="taint the Tuner/Trainer pods tolerate")
    comp.add_argument("--pipeline-root", dest="pipeline_root", default="gs://YOUR_BUCKET/kt-pipelines",
                      help="where artifacts go on the cluster (gs://... on Vertex AI)")
    comp.add_argument("--serving-model-dir", dest="serving_model_dir", default=None)
    _add_pipeline_flags(comp, module_default=DEMO_MODULE_IN_IMAGE, data_default=DEMO_DATA)
    comp.set_defaults(func=_cmd_compile)

    submit = sub.add_parser("submit", help="submit a compiled pipeline to Kubeflow or Vertex AI")
    submit.add_argument("pipeline", help="the PipelineJob JSON written by compile")
    submit.add_argument("--kfp-host", dest="kfp_host", help="Kubeflow Pipelines API endpoint URL")
    submit.add_argument("--namespace")
    submit.add_argument("--experiment")
    submit.add_argument("--run-name", dest="run_name")
    submit.add_argument("--vertex", action="store_true", help="submit to Vertex AI Pipelines")
    submit.add_argument("--project")
    submit.add_argument("--region")
    submit.add_argument("--pipeline-root", dest="pipeline_root")
    submit.add_argument("--service-account", dest="service_account")
    submit.set_defaults(func=_cmd_submit)

    demo = sub.add_parser("demo", help="run the example pipeline on the bundled penguins data")
    demo.add_argument("--output-dir", dest="output_dir", default="demo-output")
    demo.set_defaults(func=_cmd_demo)

    add_results_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args, extra_errors=(SubmitError,))


if __name__ == "__main__":
    sys.exit(main())
