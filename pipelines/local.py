"""Running the pipeline here, with TFX's Beam DAG runner."""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Dict


def run_local(pipeline) -> None:
    from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

    BeamDagRunner().run(pipeline)


def latest_output(pipeline_root: str, component: str, output: str) -> str:
    """The newest artifact directory a component wrote under the pipeline root."""
    candidates = glob.glob(os.path.join(pipeline_root, component, output, "*"))
    if not candidates:
        raise FileNotFoundError(f"no {component}.{output} artifact under {pipeline_root}")
    return max(candidates, key=lambda p: int(os.path.basename(p)) if os.path.basename(p).isdigit() else -1)


def summary(pipeline_root: str, serving_model_dir: str = None) -> Dict[str, Any]:
    """Best hyperparameters and where the trained (and pushed) model is."""
    best_dir = latest_output(pipeline_root, "Tuner", "best_hyperparameters")
    with open(os.path.join(best_dir, "best_hyperparameters.txt")) as f:
        best = json.load(f)
    model_dir = latest_output(pipeline_root, "Trainer", "model")
    out = {"best_hyperparameters": best["values"],
           "best_hyperparameters_file": os.path.join(best_dir, "best_hyperparameters.txt"),
           "tuner_results": latest_output(pipeline_root, "Tuner", "tuner_results"),
           "model": os.path.join(model_dir, "Format-Serving")}
    if serving_model_dir and os.path.isdir(serving_model_dir):
        pushed = sorted(os.listdir(serving_model_dir))
        if pushed:
            out["pushed_model"] = os.path.join(serving_model_dir, pushed[-1])
    return out
