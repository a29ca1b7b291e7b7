"""trial_overhead: what our tuner adds around each model fit.

Three ways of doing the same work in one process, on the same in-memory data:
  * ours: `kt_core.search.run_search` (RandomSearch oracle, our SearchTuner);
  * plain: a loop that builds and fits the same models with the same hyperparameter
    values (replayed from ours' tuner_results.json), same data, epochs, batch size;
  * stock: keras-tuner's own `RandomSearch` (same seed and model) on the same datasets.
Runs alternate (ours, plain, stock, plain, ours) and the faster of each pair counts, so
a burst of load from other processes on the shared machine hurts neither side alone.
"""

from __future__ import annotations

import json
import os
import tempfile

from benchmarks import common

GOAL = 1.05


def _config(trials, epochs, batch_size):
    from kt_core.config import TuningConfig

    return TuningConfig.from_dict({"tuner": "random", "objective": "val_accuracy",
                                   "max_trials": trials, "epochs": epochs,
                                   "batch_size": batch_size, "seed": 1, "overwrite": True})


def _ours(config, examples, data, out, probe=None):
    from kt_core.search import run_search

    try:
        with common.stdout_to_stderr(), common.Clock() as c:
            run_search(config, examples_dir=examples, label_key=common.LABEL, output_dir=out,
                       module_file=common.PENGUIN_MODULE, data=data, save_best_model=False)
    finally:
        if probe is not None:
            probe.remove()
    with open(os.path.join(out, "tuner_results.json")) as f:
        trials = json.load(f)
    return c.s, trials


def _breakdown_probe():
    """Where our search's time goes (the same calls a plain loop makes, and the rest)."""
    import keras
    import keras_tuner

    from kt_core import fast_trials
    from kt_core import search as search_lib

    probe = common.TimingProbe()
    probe.wrap(keras.Model, "fit", "fit (incl. in-memory checkpoint snapshots)")
    probe.wrap(keras_tuner.Tuner, "_build_hypermodel", "build")
    probe.wrap(keras.backend, "clear_session", "clear_session (incl. gc)")
    probe.wrap(fast_trials, "clear_session", "clear_session (incl. gc)")
    probe.wrap(search_lib, "preflight", "preflight (once)")
    probe.wrap(search_lib, "write_reports", "HTML report + TensorBoard logs (once)")
    probe.wrap(fast_trials, "weights_plan", "checkpoint: walk the model (inside fit)")
    probe.wrap(fast_trials, "write_weights", "checkpoint: write")
    return probe


def _plain(values_per_trial, data, build_model, config):
    """What a user would write without a tuner: build, fit, next."""
    import keras

    keras.utils.set_random_seed(config.seed)
    with common.Clock() as c:
        for values in values_per_trial:
            model = build_model(common.replay_hyperparameters(values))
            layout = data.layout_for(model)
            train = data.dataset(config.train_split, layout, config.batch_size,
                                 shuffle=config.shuffle, seed=config.seed)
            val = data.dataset(config.eval_split, layout, config.batch_size)
            model.fit(train, validation_data=val, epochs=config.epochs, verbose=0)
    return c.s


def _stock(data, build_model, config, directory):
    import keras
    import keras_tuner

    keras.utils.set_random_seed(config.seed)
    layout = ("dense",) + tuple(data.dense_features)
    train = data.dataset(config.train_split, layout, config.batch_size,
                         shuffle=config.shuffle, seed=config.seed)
    val = data.dataset(config.eval_split, layout, config.batch_size)
    with common.stdout_to_stderr(), common.Clock() as c:
        tuner = keras_tuner.RandomSearch(build_model, objective="val_accuracy",
                                         max_trials=config.max_trials, seed=config.seed,
                                         directory=directory, project_name="stock", overwrite=True)
        tuner.search(train, validation_data=val, epochs=config.epochs, verbose=0)
    values = [t.hyperparameters.values for t in tuner.oracle.trials.values()]
    return c.s, values


def trial_overhead(quick: bool = False):
    common.quiet_tensorflow()
    from kt_core.data import ExamplesData

    trials, epochs, batch_size = (3, 1, 64) if quick else (12, 3, 32)
    rows = (600, 200) if quick else (3200, 800)
    config = _config(trials, epochs, batch_size)
    build_model = common.load_build_model()
    with tempfile.TemporaryDirectory(prefix="kt-bench-trials-") as tmp:
        examples = common.write_blob_examples(os.path.join(tmp, "examples"), *rows)
        data = ExamplesData(examples, common.LABEL)
        common.warm_up(data, build_model, batch_size)

        ours, plain, stock, breakdown = [], [], [], None
        t, records = _ours(config, examples, data, os.path.join(tmp, "ours1"))
        ours.append(t)
        values = [r["hyperparameters"] for r in records]
        plain.append(_plain(values, data, build_model, config))
        t, stock_values = _stock(data, build_model, config, tmp)
        stock.append(t)
        if not quick:
            plain.append(_plain(values, data, build_model, config))
            probe = _breakdown_probe()
            t, _ = _ours(config, examples, data, os.path.join(tmp, "ours2"), probe)
            ours.append(t)
            breakdown = {k: round(v, 3) for k, v in sorted(probe.seconds.items(),
                                                             key=lambda kv: -kv[1])}
            breakdown["rest (oracle, records, tuner state, ...)"] = round(
                t - probe.outer_s, 3)

    completed = sum(r["status"] == "COMPLETED" for r in records)
    ours_s, plain_s, stock_s = min(ours), min(plain), min(stock)
    return common.result(
        "trial_overhead", ours_s, plain_s,
        ratio_meaning="our search time / plain build-and-fit loop time for the same models "
                      "(1.0 = no overhead; lower is better)",
        goal=f"ratio <= {GOAL}", goal_met=ours_s / plain_s <= GOAL,
        stock_keras_tuner_s=round(stock_s, 3),
        stock_ratio=round(stock_s / plain_s, 4),
        stock_same_hyperparameters=_same(stock_values, values),
        runs_s={"ours": [round(x, 3) for x in ours], "plain": [round(x, 3) for x in plain],
                "stock": [round(x, 3) for x in stock]},
        ours_per_trial_overhead_s=round((ours_s - plain_s) / trials, 4),
        ours_breakdown_s=breakdown,
        plain_loop_note="no clear_session between models (the most favourable baseline)",
        trials=trials, completed_trials=completed, epochs=epochs, batch_size=batch_size,
        train_rows=rows[0], eval_rows=rows[1],
        model="pipelines/penguin_module.py (1-3 Dense layers, Adam)")


def _same(a, b):
    key = lambda vs: sorted(json.dumps(v, sort_keys=True) for v in vs)  # noqa: E731
    return key(a) == key(b)


CASES = {"trial_overhead": trial_overhead}
