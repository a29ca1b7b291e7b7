"""`kt-pipelines`: the command line over kt_core (and, later, the pipelines).

Imports are deferred into each subcommand so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import List, Optional

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO_EXAMPLES = os.path.join(REPO_ROOT, "data", "penguins", "examples")
DEMO_MODULE = os.path.join(REPO_ROOT, "pipelines", "penguin_module.py")
DEMO_CONFIG = os.path.join(REPO_ROOT, "pipelines", "penguin_tuning.yaml")


def _add_tuning_flags(p: argparse.ArgumentParser) -> None:
    """Flags that override the tuning config file, named as the config keys are."""
    p.add_argument("--config", help="tuning config file (JSON or YAML)")
    p.add_argument("--tuner", help="random | grid | hyperband | bayesian")
    p.add_argument("--objective", help="metric to optimize, e.g. val_accuracy")
    p.add_argument("--max-trials", type=int, dest="max_trials")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-epochs", type=int, dest="max_epochs")
    p.add_argument("--executions-per-trial", type=int, dest="executions_per_trial")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--seed", type=int)
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="start the search over instead of resuming it")


_TUNING_FLAGS = ("tuner", "objective", "max_trials", "epochs", "max_epochs",
                 "executions_per_trial", "batch_size", "seed", "overwrite")


def tuning_config_from_args(args) -> "TuningConfig":
    from kt_core.config import TuningConfig, merge

    base = TuningConfig.from_file(args.config) if args.config else {}
    return TuningConfig.from_dict(merge(base, {k: getattr(args, k) for k in _TUNING_FLAGS}))


def _cmd_tune(args) -> int:
    from kt_core.search import run_search

    config = tuning_config_from_args(args)
    result = run_search(config, examples_dir=args.examples, label_key=args.label_key,
                        output_dir=args.output_dir, module_file=args.module_file,
                        schema_path=args.schema)
    _print_result(result)
    return 0


def _print_result(result) -> None:
    print(f"best trial: {result.best_trial_id} (score {result.best_score})")
    print("best hyperparameters: " + json.dumps(result.best_hyperparameters.values, sort_keys=True))
    print(f"outputs: {result.output_dir}")
    if result.best_model_path:
        print(f"best model: {result.best_model_path}")


def _cmd_demo(args) -> int:
    from kt_core.config import TuningConfig
    from kt_core.search import run_search

    config = TuningConfig.from_dict({**TuningConfig.from_file(DEMO_CONFIG), "overwrite": True})
    result = run_search(config, examples_dir=DEMO_EXAMPLES, label_key="species",
                        output_dir=args.output_dir, module_file=DEMO_MODULE)
    _print_result(result)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kt-pipelines",
        description="Hyperparameter search with keras-tuner on TFX examples.")
    sub = parser.add_subparsers(dest="command", required=True)

    tune = sub.add_parser("tune", help="run a search on a TFX Examples directory")
    tune.add_argument("--examples", required=True, help="Examples dir holding Split-<name>/ TFRecords")
    tune.add_argument("--module-file", required=True, dest="module_file",
                      help="module defining build_model(hp) or hypermodel, or 'resnet'/'xception'")
    tune.add_argument("--label-key", required=True, dest="label_key")
    tune.add_argument("--output-dir", required=True, dest="output_dir")
    tune.add_argument("--schema", help="TFX schema.pbtxt (otherwise inferred from the records)")
    _add_tuning_flags(tune)
    tune.set_defaults(func=_cmd_tune)

    demo = sub.add_parser("demo", help="tune the bundled penguins example")
    demo.add_argument("--output-dir", default="demo-output", dest="output_dir")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from kt_core.errors import USER_ERRORS

    try:
        return args.func(args)
    except USER_ERRORS as e:
        print(f"kt-pipelines: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
