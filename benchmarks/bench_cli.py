"""cli_startup: how long `kt-pipelines` takes to answer, as a user runs it (subprocesses).

* `kt-pipelines compile` (the demo pipeline to a KFP v2 / Vertex AI PipelineJob JSON)
  against the floor it cannot go below: a `python -c` importing the libraries compiling
  needs (TensorFlow, TFX's v1 API and Kubeflow V2 runner, kfp). Ratio = compile / floor.
* `kt-pipelines --help` against `python -c pass` in the same venv (details): help
  must not import TensorFlow.
`--help` runs 7 times alternating with its baseline (A B B A ...), the fastest of each
counting; compile runs once after its baseline, both after one uncounted run of the
imports that warms the page cache (compile is ~17 s; its ratio has a wide margin).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from benchmarks import common

KT = os.path.join(os.path.dirname(sys.executable), "kt-pipelines")
COMPILE_IMPORTS = ("import tensorflow, kfp; from tfx import v1; "
                   "from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner")
HELP_GOAL_S = 1.0
COMPILE_GOAL = 1.25


def _wall(cmd, env):
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=common.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def _alternating(pairs, repeats, env):
    """{name: [seconds...]}: `repeats` rounds, each round's order the reverse of the last."""
    runs = {name: [] for name, _ in pairs}
    for i in range(repeats):
        for name, cmd in (pairs if i % 2 == 0 else pairs[::-1]):
            runs[name].append(_wall(cmd, env))
    return runs


def cli_startup(quick: bool = False):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="kt-bench-cli-") as tmp:
        compile_cmd = [KT, "compile", "--output", os.path.join(tmp, "pipeline.json"),
                       "--image", "registry.example/kt-pipelines:bench"]
        help_runs = _alternating([("help", [KT, "--help"]), ("python", [python, "-c", "pass"])],
                             3 if quick else 7, env)
        _wall([python, "-c", COMPILE_IMPORTS], env)  # not counted: warms the page cache
        compile_runs = _alternating([("imports", [python, "-c", COMPILE_IMPORTS]),
                                     ("compile", compile_cmd)], 1, env)
        compiled = os.path.getsize(os.path.join(tmp, "pipeline.json"))
    help_imports_tf = subprocess.run(
        [python, "-c", "import sys\nfrom pipelines import cli\ntry:\n cli.main(['--help'])\n"
                       "except SystemExit:\n pass\nprint('tensorflow' in sys.modules)"],
        cwd=common.REPO, capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1]
    compile_s, imports_s = min(compile_runs["compile"]), min(compile_runs["imports"])
    help_s, python_s = min(help_runs["help"]), min(help_runs["python"])
    return common.result(
        "cli_startup", compile_s, imports_s,
        ratio_meaning="`kt-pipelines compile` wall time / wall time of a python -c that only "
                      "imports what compiling needs (1.0 = nothing beyond unavoidable imports)",
        goal=f"ratio <= {COMPILE_GOAL}; --help < {HELP_GOAL_S:.0f} s without importing TensorFlow",
        goal_met=(compile_s / imports_s <= COMPILE_GOAL and help_s < HELP_GOAL_S
                  and help_imports_tf == "False"),
        help_s=round(help_s, 3), python_pass_s=round(python_s, 3),
        help_ratio_to_python_pass=round(help_s / python_s, 2),
        help_imports_tensorflow=help_imports_tf == "True",
        compile_imports_floor=COMPILE_IMPORTS, compiled_json_bytes=compiled,
        runs_s={k: [round(x, 3) for x in v] for k, v in {**help_runs, **compile_runs}.items()})


CASES = {"cli_startup": cli_startup}
