"""training: a diverging trial, a trial that runs out of memory, a trial slower than
`trial_timeout`. Each is one FAILED trial, recorded with its reason, never the best;
the search goes on and the command succeeds."""

import json

from .helpers import bad_module, by_value, trials, tune


def _best(out):
    with open(out / "best_hyperparameters.txt") as f:
        return json.load(f)["values"]


def test_nan_loss_fails_the_trial_and_is_never_best(tmp_path, capsys, penguin_examples):
    # The objective is val_accuracy, which stays finite when the loss is NaN:
    # keras-tuner alone would score this trial.
    out = tmp_path / "out"
    code, stdout, err = tune(capsys, out, penguin_examples, bad_module("nan_loss"),
                             "--tuner", "grid", "--max-trials", "3", "--epochs", "1",
                             "--objective", "val_accuracy")
    assert code == 0, err
    records = by_value(trials(out), "weights")
    assert sorted(records) == ["normal", "poisoned", "wide"]
    poisoned = records["poisoned"]
    assert poisoned["status"] == "FAILED" and poisoned["score"] is None
    assert "loss is nan after epoch 1: training diverged" in poisoned["error"]
    assert records["normal"]["status"] == records["wide"]["status"] == "COMPLETED"
    assert _best(out)["weights"] != "poisoned"
    assert '"weights": "poisoned"' not in stdout.split("best hyperparameters:")[1]


def test_out_of_memory_in_one_trial_does_not_take_the_search_down(tmp_path, capsys, penguin_examples):
    out = tmp_path / "out"
    code, _, err = tune(capsys, out, penguin_examples, bad_module("huge_layer"),
                        "--tuner", "grid", "--max-trials", "3", "--epochs", "1")
    assert code == 0, err
    records = by_value(trials(out), "units")
    huge = records[2 ** 46]
    assert huge["status"] == "FAILED" and huge["score"] is None
    assert "ResourceExhaustedError" in huge["error"] and "OOM when allocating tensor" in huge["error"]
    assert records[8]["status"] == records[16]["status"] == "COMPLETED"  # the next trial ran
    assert _best(out)["units"] in (8, 16)


def test_trial_slower_than_trial_timeout_is_stopped_and_recorded(tmp_path, capsys, penguin_examples):
    out = tmp_path / "out"
    code, _, err = tune(capsys, out, penguin_examples, bad_module("slow_trial"),
                        "--tuner", "grid", "--max-trials", "3", "--epochs", "1", "--batch-size", "16",
                        config={"trial_timeout": 8})
    assert code == 0, err
    records = by_value(trials(out), "units")
    slow = records[5]
    assert slow["status"] == "FAILED" and slow["score"] is None
    assert "trial timed out after" in slow["error"] and "(trial_timeout: 8s)" in slow["error"]
    assert slow["duration_s"] >= 8  # not stopped before its time
    assert records[4]["status"] == records[8]["status"] == "COMPLETED"  # the search went on
    assert _best(out)["units"] in (4, 8)
