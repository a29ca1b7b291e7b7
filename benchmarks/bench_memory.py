"""memory: resident memory across a long search of small models.

Our search runs 50 trials (1 epoch, small MLPs) in a fresh process; the resident set
size (RSS) is read after every trial. Growth is RSS after trial 50 minus RSS after
trial 5 (the first trials load libraries and fill caches that are then reused). Stock
keras-tuner `RandomSearch` runs 15 of the same kind of trials on the same data in a
process of its own (50 would double the case's time): its growth from trial 5 to 20
and per-trial slope are reported, and the ratio compares time per trial.

Run as `python -m benchmarks.bench_memory VARIANT TRIALS OUT.json` for one variant.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from benchmarks import common

GOAL_MB = 100.0


def _data(tmp, quick):
    from kt_core.data import ExamplesData

    rows = (600, 200) if quick else (1000, 250)
    examples = common.write_blob_examples(os.path.join(tmp, "examples"), *rows)
    return examples, ExamplesData(examples, common.LABEL)


def _config(trials):
    from kt_core.config import TuningConfig

    return TuningConfig.from_dict({"tuner": "random", "objective": "val_accuracy",
                                   "max_trials": trials, "epochs": 1, "batch_size": 64,
                                   "seed": 5, "overwrite": True})


def run_ours(trials, tmp, quick):
    from kt_core import results as results_lib
    from kt_core.search import run_search

    examples, data = _data(tmp, quick)
    rss = []
    original = results_lib.TrialRecorder.trial_end

    def trial_end(recorder, trial):  # probe: read RSS once the trial is recorded
        record = original(recorder, trial)
        rss.append(common.rss_mb())
        return record

    results_lib.TrialRecorder.trial_end = trial_end
    try:
        with common.stdout_to_stderr(), common.Clock() as c:
            run_search(_config(trials), examples_dir=examples, label_key=common.LABEL,
                       output_dir=os.path.join(tmp, "out"), module_file=common.PENGUIN_MODULE,
                       data=data, save_best_model=False)
    finally:
        results_lib.TrialRecorder.trial_end = original
    return c.s, rss


def run_stock(trials, tmp, quick):
    import keras_tuner

    _, data = _data(tmp, quick)
    config = _config(trials)
    layout = ("dense",) + tuple(data.dense_features)
    train = data.dataset("train", layout, config.batch_size, shuffle=True, seed=config.seed)
    val = data.dataset("eval", layout, config.batch_size)
    rss = []

    class Probed(keras_tuner.RandomSearch):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            rss.append(common.rss_mb())

    with common.stdout_to_stderr(), common.Clock() as c:
        tuner = Probed(common.load_build_model(), objective="val_accuracy",
                       max_trials=trials, seed=config.seed, directory=tmp, project_name="stock",
                       overwrite=True)
        tuner.search(train, validation_data=val, epochs=config.epochs, verbose=0)
    return c.s, rss


def _run_variant(variant, trials, quick):
    """In a fresh process, so that one variant's memory is not the other's."""
    with tempfile.TemporaryDirectory(prefix="kt-bench-mem-") as tmp:
        out = os.path.join(tmp, "variant.json")
        cmd = [sys.executable, "-m", "benchmarks.bench_memory", variant, str(trials), out]
        if quick:
            cmd.append("--quick")
        proc = subprocess.run(cmd, cwd=common.REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"memory variant {variant} failed:\n{proc.stderr[-3000:]}")
        with open(out) as f:
            return json.load(f)


def memory(quick: bool = False):
    trials, stock_trials, early = (8, 4, 2) if quick else (50, 15, 5)
    ours = _run_variant("ours", trials, quick)
    stock = _run_variant("stock", stock_trials, quick)

    def growth(v, last):
        return v["rss_mb"][last - 1] - v["rss_mb"][early - 1]

    ours_growth, stock_growth = growth(ours, trials), growth(stock, stock_trials)
    per_trial = ours["seconds"] / trials, stock["seconds"] / stock_trials
    return common.result(
        "memory", ours["seconds"], stock["seconds"], ratio=per_trial[0] / per_trial[1],
        ratio_meaning=f"our search's seconds per trial ({trials} trials) / stock keras-tuner "
                      f"RandomSearch's ({stock_trials} trials), same data and model; the memory "
                      "figures and the goal are in the details",
        goal=f"RSS growth from trial {early} to trial {trials} <= {GOAL_MB:.0f} MB",
        goal_met=ours_growth <= GOAL_MB,
        ours_rss_after_trial_mb={str(early): round(ours["rss_mb"][early - 1], 1),
                                 str(trials): round(ours["rss_mb"][trials - 1], 1)},
        ours_growth_mb=round(ours_growth, 1),
        ours_growth_mb_per_trial=round(ours_growth / (trials - early), 2),
        stock_trials=stock_trials,
        stock_rss_after_trial_mb={str(early): round(stock["rss_mb"][early - 1], 1),
                                  str(stock_trials): round(stock["rss_mb"][stock_trials - 1], 1)},
        stock_growth_mb=round(stock_growth, 1),
        stock_growth_mb_per_trial=round(stock_growth / (stock_trials - early), 2),
        stock_growth_extrapolated_to_trial_50_mb=round(
            stock_growth / (stock_trials - early) * (trials - early), 1),
        ours_rss_every_trial_mb=[round(x, 1) for x in ours["rss_mb"]],
        stock_rss_every_trial_mb=[round(x, 1) for x in stock["rss_mb"]],
        trials=trials, epochs=1, batch_size=64,
        rss_source="psutil" if _has_psutil() else "/proc/self/status VmRSS")


def _has_psutil():
    try:
        import psutil  # noqa: F401
        return True
    except ImportError:
        return False


CASES = {"memory": memory}


def main(argv):
    variant, trials, out = argv[0], int(argv[1]), argv[2]
    quick = "--quick" in argv
    common.quiet_tensorflow()
    with tempfile.TemporaryDirectory(prefix="kt-bench-mem-run-") as tmp:
        seconds, rss = (run_ours if variant == "ours" else run_stock)(trials, tmp, quick)
    if len(rss) < trials:
        raise SystemExit(f"{variant}: only {len(rss)} of {trials} trials ran")
    with open(out, "w") as f:
        json.dump({"seconds": seconds, "rss_mb": rss}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
