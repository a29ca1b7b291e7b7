"""The benchmark harness: runs its cases (tiny sizes) and writes the documented shape.

Behaviour only: no timing is asserted (the machine is shared and noisy).
"""

import json
import os
import subprocess
import sys

from conftest import REPO

MINE = ("trial_overhead", "data_reuse", "memory", "pipeline", "cli_startup")


def bench(*args):
    return subprocess.run([sys.executable, "-m", "benchmarks.run", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=900)


def test_lists_every_case():
    proc = bench("--list")
    assert proc.returncode == 0, proc.stderr
    assert set(MINE) <= set(proc.stdout.split())


def test_unknown_case_is_refused_naming_the_cases(tmp_path):
    proc = bench("--case", "no_such_case", "--output", str(tmp_path / "r.json"))
    assert proc.returncode == 2
    assert "no_such_case" in proc.stderr and "trial_overhead" in proc.stderr
    assert not (tmp_path / "r.json").exists()


def test_quick_cases_write_results_and_keep_other_entries(tmp_path):
    out = tmp_path / "bench-results.json"
    earlier = {"case": "pipeline", "ours_s": 1.0, "baseline_s": 2.0, "ratio": 0.5, "details": {}}
    stale = {"case": "trial_overhead", "ours_s": 9.0, "baseline_s": 9.0, "ratio": 1.0, "details": {}}
    out.write_text(json.dumps([earlier, stale]))

    proc = bench("--quick", "--case", "trial_overhead,data_reuse", "--output", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entries = json.loads(out.read_text())
    # Named cases replace their own entries; the others stay.
    assert [e["case"] for e in entries] == ["pipeline", "trial_overhead", "data_reuse"]
    assert entries[0] == earlier
    for entry in entries[1:]:
        assert list(entry)[:5] == ["case", "ours_s", "baseline_s", "ratio", "details"]
        assert entry["ours_s"] >= 0 and entry["baseline_s"] > 0
        assert entry["ratio"] == round(entry["ratio"], 4)
        details = entry["details"]
        assert details["ratio_meaning"] and details["goal"]
        assert isinstance(details["goal_met"], bool)
        assert details["quick"] is True and details["cpus"] == os.cpu_count()
        assert "error" not in details

    trials = entries[1]["details"]
    assert trials["completed_trials"] == trials["trials"] == 3
    # The plain loop replayed our trials' values; stock keras-tuner drew the same ones.
    assert trials["stock_same_hyperparameters"] is True
    assert set(trials["runs_s"]) == {"ours", "plain", "stock"}

    data = entries[2]["details"]
    assert data["completed_trials"] == data["trials"]
    # After the first trial nothing opens or parses a TFRecord file again.
    after = data["input_calls_after_first_trial"]
    assert not {"open_tfrecords", "parse_split", "read_raw", "parse_example"} & set(after)
    assert data["initial_load_s"] > 0
