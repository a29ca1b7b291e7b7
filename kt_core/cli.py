"""The `tune` subcommand of `kt-pipelines` and the error handling every subcommand shares.

The whole command line is `pipelines/cli.py`; kt_core knows nothing of TFX or KFP.
Imports are deferred into each subcommand so `--help` stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import sys


def add_tuning_flags(p) -> None:
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
    p.add_argument("--num-parallel-trials", type=int, dest="num_parallel_trials",
                   help="trial workers run at once (docs/parallel.md)")
    p.add_argument("--launcher", help="local (worker processes) | kubernetes (worker pods)")
    p.add_argument("--trials-per-gpu", type=int, dest="trials_per_gpu",
                   help="local launcher: workers packed onto one GPU")


_TUNING_FLAGS = ("tuner", "objective", "max_trials", "epochs", "max_epochs",
                 "executions_per_trial", "batch_size", "seed", "overwrite",
                 "num_parallel_trials", "launcher", "trials_per_gpu")


def tuning_config_dict(args, base=None) -> dict:
    """The config file (or `base`) with the command-line flags over it, validated."""
    from kt_core.config import TuningConfig, merge

    if args.config:
        base = TuningConfig.from_file(args.config)
    merged = merge(base or {}, {k: getattr(args, k) for k in _TUNING_FLAGS})
    TuningConfig.from_dict(merged)
    return merged


def _cmd_tune(args) -> int:
    from kt_core.config import TuningConfig
    from kt_core.search import run_search

    config = TuningConfig.from_dict(tuning_config_dict(args))
    result = run_search(config, examples_dir=args.examples, label_key=args.label_key,
                        output_dir=args.output_dir, module_file=args.module_file,
                        schema_path=args.schema)
    print_result(result)
    return 0


def print_result(result) -> None:
    print(f"best trial: {result.best_trial_id} (score {result.best_score})")
    print("best hyperparameters: " + json.dumps(result.best_hyperparameters.values, sort_keys=True))
    print(f"outputs: {result.output_dir}")
    if result.best_model_path:
        print(f"best model: {result.best_model_path}")


def add_tune_parser(sub) -> None:
    tune = sub.add_parser("tune", help="run a search on a TFX Examples directory")
    tune.add_argument("--examples", required=True, help="Examples dir holding Split-<name>/ TFRecords")
    tune.add_argument("--module-file", required=True, dest="module_file",
                      help="module defining build_model(hp) or hypermodel, or 'resnet'/'xception'")
    tune.add_argument("--label-key", required=True, dest="label_key")
    tune.add_argument("--output-dir", required=True, dest="output_dir")
    tune.add_argument("--schema", help="TFX schema.pbtxt (otherwise inferred from the records)")
    add_tuning_flags(tune)
    tune.set_defaults(func=_cmd_tune)


def run_command(args, extra_errors=()) -> int:
    """Runs a parsed subcommand; a user's mistake is one line on stderr and exit 2."""
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning)
    # Our progress lines at INFO; everybody else's (Beam, TFX, absl) only from WARNING up.
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("kt_core").setLevel(logging.INFO)
    from kt_core.errors import USER_ERRORS

    try:
        return args.func(args)
    except USER_ERRORS + tuple(extra_errors) as e:
        print(f"kt-pipelines: error: {e}", file=sys.stderr)
        return 2
