"""`kt-pipelines results OUTPUT_DIR`: what a search found, for people.

    kt-pipelines results OUTPUT_DIR [--top N] [--html FILE] [--tensorboard]

Prints the top trials and the best hyperparameters; `--html FILE` also writes
the self-contained HTML report, `--tensorboard` the TensorBoard HParams logs
(OUTPUT_DIR/tensorboard). Works on a search that is still running.

Wiring into kt_core/cli.py: `add_results_parser(sub)` in `build_parser()`. It
sets `func`, so `cli.main` dispatches to it; it reports its own user errors and
returns 2 for them. Standalone: `python -m kt_core.results_cli OUTPUT_DIR ...`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional


def add_results_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "results", help="summarize a search's results (text, HTML report, TensorBoard)",
        description="Summarize the search in OUTPUT_DIR (the --output-dir of `tune`): the top "
                    "trials and the best hyperparameters. Works while the search still runs.")
    _add_arguments(p)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="the search's output directory")
    p.add_argument("--top", type=_non_negative, default=5, help="how many trials to list (default 5)")
    p.add_argument("--html", metavar="FILE",
                   help="also write a self-contained HTML report (opens offline) to FILE")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard HParams logs to OUTPUT_DIR/tensorboard")
    p.add_argument("--objective", metavar="METRIC",
                   help="the search's objective, when it cannot be told from the records")
    p.set_defaults(func=cmd_results)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def cmd_results(args) -> int:
    from kt_core import report

    try:
        search = report.load_search(args.output_dir, objective=getattr(args, "objective", None))
    except report.ReportError as e:
        print(f"kt-pipelines: error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(report.summary_text(search, top=args.top))
    if args.html:
        path = report.write_html_report(args.output_dir, args.html, search=search)
        print(f"\nHTML report: {os.path.abspath(path) if '://' not in path else path}")
    if args.tensorboard:
        from kt_core import tensorboard_logs

        logdir = tensorboard_logs.write_hparams_logs(args.output_dir, search=search)
        print(f"TensorBoard logs: {logdir}\n  view with: tensorboard --logdir {logdir}")
    sys.stdout.flush()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(prog="kt-pipelines results", description=__doc__.split("\n\n")[0])
    _add_arguments(parser)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
