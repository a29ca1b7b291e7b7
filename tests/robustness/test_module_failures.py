"""module: build_model raising for some values. (Missing file, syntax error, no
build_model/hypermodel, uncompiled, not a model: tests/test_cli.py; some FAILED
trials while the search goes on: tests/test_search.py.)"""

import os

from .helpers import bad_module, by_value, error_line, trials, tune


def test_too_many_failures_in_a_row_stop_the_search_showing_the_last_error(
        tmp_path, capsys, penguin_examples):
    out = tmp_path / "out"
    code, _, err = tune(capsys, out, penguin_examples, bad_module("mostly_failing"),
                        "--tuner", "grid", "--max-trials", "10", "--epochs", "1",
                        config={"max_consecutive_failed_trials": 2})
    assert code == 2
    assert error_line(err) == (
        "kt-pipelines: error: search stopped: 2 trials failed in a row "
        "(max_consecutive_failed_trials: 2); last error: ValueError: 14 units do not fit")
    records = by_value(trials(out), "units")
    assert sorted(records) == [4, 13, 14]  # stopped: 15 never ran
    assert records[4]["status"] == "COMPLETED"
    assert [records[u]["status"] for u in (13, 14)] == ["FAILED", "FAILED"]
    assert records[14]["error"] == "ValueError: 14 units do not fit"  # the last one is recorded too
    assert not os.path.exists(out / "best_hyperparameters.txt")  # an aborted search names no best
