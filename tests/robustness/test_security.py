"""security: which module file a search ran is recorded with its results (path and
SHA-256), through the CLI and the component; the parallel coordinator's token never
reaches a log or an artifact. (The container's non-root user:
tests/test_manifests.py::test_dockerfile_ends_as_a_non_root_user.)"""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import module

from .helpers import run_tuner_executor, tune

KT = os.path.join(os.path.dirname(sys.executable), "kt-pipelines")


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _recorded(results_dir):
    with open(os.path.join(results_dir, "search_config.json")) as f:
        return json.load(f)


def test_module_path_and_hash_recorded_by_the_cli(tmp_path, capsys, penguin_examples):
    out = tmp_path / "out"
    code, _, err = tune(capsys, out, penguin_examples, module("mlp_conditional"),
                        "--max-trials", "1", "--epochs", "1")
    assert code == 0, err
    recorded = _recorded(out)
    assert recorded["module_file"] == module("mlp_conditional")
    assert recorded["module_sha256"] == _sha256(module("mlp_conditional"))


def test_module_path_and_hash_recorded_in_the_component_artifact(tmp_path, penguin_examples):
    best_dir, results_dir = run_tuner_executor(
        tmp_path, penguin_examples, module("mlp_conditional"), {"max_trials": 1, "epochs": 1})
    recorded = _recorded(results_dir)  # in the TunerResults artifact, next to tuner_results.json
    assert recorded["module_file"] == os.path.abspath(module("mlp_conditional"))
    assert recorded["module_sha256"] == _sha256(module("mlp_conditional"))
    assert os.listdir(best_dir) == ["best_hyperparameters.txt"]


def _parallel_search_supported():
    try:
        import kt_core.parallel.auth  # noqa: F401
        from kt_core.config import TuningConfig
    except ImportError:
        return False
    return "num_parallel_trials" in TuningConfig.__dataclass_fields__


def _worker_token(proc, env_name):
    """The token as the coordinator handed it to a worker (its environment)."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            token = child.environ().get(env_name)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if token:
            return token
    return None


@pytest.mark.skipif(not _parallel_search_supported(),
                    reason="kt_core.parallel (parallel trials with a coordinator token) is not here yet")
def test_coordinator_token_never_in_logs_or_artifacts(tmp_path, penguin_examples):
    from kt_core.parallel import auth

    config = tmp_path / "parallel.json"
    config.write_text(json.dumps({"num_parallel_trials": 2, "max_trials": 2, "epochs": 1,
                                  "verbose": 1}))
    out = tmp_path / "out"
    stdout, stderr = tmp_path / "stdout.log", tmp_path / "stderr.log"
    argv = [KT, "tune", "--examples", penguin_examples, "--module-file", module("mlp_conditional"),
            "--label-key", "species", "--output-dir", str(out), "--config", str(config)]
    with open(stdout, "w") as so, open(stderr, "w") as se:
        proc = subprocess.Popen(argv, stdout=so, stderr=se)
        token = None
        try:
            while proc.poll() is None and token is None:
                token = _worker_token(proc, auth.TOKEN_ENV)
                time.sleep(0.05)
            proc.wait(timeout=900)  # a hang guard, not a threshold
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, stderr.read_text()
    assert token and len(token) >= 32, "no worker received a coordinator token"
    needle = token.encode()
    leaked = [str(p) for p in [stdout, stderr] + sorted(out.rglob("*"))
              if p.is_file() and needle in p.read_bytes()]
    assert leaked == []
    # The scan saw a real search's outputs: both trials ran in the workers.
    assert [r["status"] for r in json.loads((out / "tuner_results.json").read_text())] == [
        "COMPLETED", "COMPLETED"]
