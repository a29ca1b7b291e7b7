"""outputs: a search killed mid-trial (SIGKILL, no chance to clean up) leaves
readable results and no best_hyperparameters.txt naming a trial it did not
complete; running the same command again resumes it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

from .helpers import bad_module, by_value, trials, tune

KT = os.path.join(os.path.dirname(sys.executable), "kt-pipelines")


def _wait_for(path, proc, limit_s=600):
    """Until `path` exists; a search that exits or never gets there fails the test
    (the limit only keeps a broken test from hanging; it is no threshold)."""
    deadline = time.monotonic() + limit_s
    while not os.path.exists(path):
        assert proc.poll() is None, f"search exited early ({proc.returncode})"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_sigkill_mid_search_leaves_no_false_best_and_rerun_resumes(tmp_path, capsys, penguin_examples):
    module_file = str(tmp_path / "interruptible.py")
    shutil.copy(bad_module("interruptible"), module_file)
    out = tmp_path / "out"
    common = ["--tuner", "grid", "--epochs", "1", "--seed", "1"]

    # An earlier, finished search left a best_hyperparameters.txt in the output dir.
    code, _, err = tune(capsys, out, penguin_examples, module_file, *common, "--max-trials", "2")
    assert code == 0, err
    assert os.path.exists(out / "best_hyperparameters.txt")

    # Start over in a real process; it blocks inside trial 3 (16 units) until killed.
    (tmp_path / "block").write_text("")
    argv = [KT, "tune", "--examples", penguin_examples, "--module-file", module_file,
            "--label-key", "species", "--output-dir", str(out), *common, "--max-trials", "4",
            "--overwrite"]
    with open(tmp_path / "killed-search.log", "w") as log, \
            subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT) as proc:
        try:
            _wait_for(tmp_path / "started", proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed-search.log").read_text()

    # What the killed search left: its own two completed trials, valid JSON, no best.
    killed = trials(out)
    assert [(r["hyperparameters"]["units"], r["status"]) for r in killed] == [
        (4, "COMPLETED"), (8, "COMPLETED")]
    assert not os.path.exists(out / "best_hyperparameters.txt")
    assert not os.path.exists(out / "best_model.keras")

    # The same command without --overwrite resumes: completed trials kept, the killed one re-run.
    os.remove(tmp_path / "block")
    code, _, err = tune(capsys, out, penguin_examples, module_file, *common, "--max-trials", "4")
    assert code == 0, err
    resumed = trials(out)
    assert resumed[:2] == killed  # not re-run: same records, same durations
    records = by_value(resumed, "units")
    assert sorted(records) == [4, 8, 16, 32] and len(resumed) == 4
    assert all(r["status"] == "COMPLETED" for r in resumed)
    with open(out / "best_hyperparameters.txt") as f:
        best = json.load(f)["values"]
    assert best == min(resumed, key=lambda r: r["score"])["hyperparameters"]  # objective val_loss
