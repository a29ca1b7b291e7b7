"""data_reuse: how much of a search goes into reading and parsing the examples again.

A 20-trial search (1 epoch each) over >= 100k rows of gzipped tf.Example TFRecords
written by tests/datagen.py. Probes (timing wrappers, no change to what runs) count
and time, per trial, everything that reads or parses input: opening TFRecord files,
`tf.io.parse_example`, `ExamplesData` parsing a split and building / looking up a
dataset. `ours_s` is that time summed over the trials after the first.

For scale, details also give: the one-time load (read + parse all splits, before
trial 1), the time the in-memory batches take to produce (one pass of the cached
datasets without a model: the feeding cost inside every epoch), and one read + parse
pass over the files with a plain tf.data pipeline, i.e. what a tuner that re-reads its
input every epoch (the stock TFX Tuner with `data_accessor.tf_dataset_factory`) pays
per epoch, extrapolated to the trials after the first.
"""

from __future__ import annotations

import collections
import os
import tempfile

from benchmarks import common

GOAL = 0.05


class InputProbe(common.TimingProbe):
    """Times calls of the functions that read or parse input, by trial number: `seconds`
    is keyed by trial (0: before the first), nested probed calls counted once."""

    def __init__(self):
        super().__init__()
        self.trial = 0

    def _record(self, label, elapsed, outermost):
        if outermost:
            self.seconds[self.trial] += elapsed
        self.calls[(self.trial, label)] += 1

    def on_trial_begin(self, owner):
        original = owner.trial_begin

        def trial_begin(recorder, trial_id):
            self.trial += 1
            return original(recorder, trial_id)

        owner.trial_begin = trial_begin
        self._undo.append((owner, "trial_begin", original))

    def remove(self):
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)

    def after_first(self):
        return sum(s for t, s in self.seconds.items() if t >= 2)

    def calls_after_first(self):
        out = collections.Counter()
        for (t, label), n in self.calls.items():
            if t >= 2:
                out[label] += n
        return dict(out)


def _install_probe():
    import tensorflow as tf

    from kt_core import data as data_lib
    from kt_core import results as results_lib

    probe = InputProbe()
    probe.wrap(data_lib.ExamplesData, "_parse_split", "parse_split")
    probe.wrap(data_lib.ExamplesData, "dataset", "dataset")
    probe.wrap(data_lib, "_read_raw", "read_raw")
    probe.wrap(tf.data, "TFRecordDataset", "open_tfrecords")
    probe.wrap(tf.io, "parse_example", "parse_example")
    probe.on_trial_begin(results_lib.TrialRecorder)
    return probe


def _feed_pass_s(data, config):
    """One epoch of the cached in-memory datasets (train + eval) without a model."""
    layout = ("dense",) + tuple(data.dense_features)
    train = data.dataset(config.train_split, layout, config.batch_size,
                         shuffle=config.shuffle, seed=config.seed)
    val = data.dataset(config.eval_split, layout, config.batch_size)
    with common.Clock() as c:
        for ds in (train, val):
            for _ in ds:
                pass
    return c.s


def _reread_pass_s(examples, split, batch_size):
    """One read + parse pass over a split's files, the way a file-reading input fn does."""
    import tensorflow as tf

    from kt_core.data import split_files

    spec = {f"f{i}": tf.io.FixedLenFeature([], tf.float32) for i in range(4)}
    spec[common.LABEL] = tf.io.FixedLenFeature([], tf.int64)
    names = sorted(n for n in spec if n != common.LABEL)

    def to_xy(batch):
        parsed = tf.io.parse_example(batch, spec)
        return tf.stack([parsed[n] for n in names], axis=1), parsed[common.LABEL]

    ds = (tf.data.TFRecordDataset(split_files(examples, split), compression_type="GZIP")
          .batch(batch_size).map(to_xy, num_parallel_calls=tf.data.AUTOTUNE)
          .prefetch(tf.data.AUTOTUNE))
    with common.Clock() as c:
        for _ in ds:
            pass
    return c.s


def data_reuse(quick: bool = False):
    common.quiet_tensorflow()
    from kt_core.config import TuningConfig
    from kt_core.search import run_search

    trials, rows, eval_rows = (3, 4000, 1000) if quick else (20, 100_000, 10_000)
    config = TuningConfig.from_dict({"tuner": "random", "objective": "val_accuracy",
                                     "max_trials": trials, "epochs": 1, "batch_size": 512,
                                     "seed": 3, "overwrite": True})
    with tempfile.TemporaryDirectory(prefix="kt-bench-data-") as tmp:
        with common.Clock() as gen:
            examples = common.write_blob_examples(os.path.join(tmp, "examples"), rows, eval_rows)
        size_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(examples)
                      for f in fs) / 2**20
        probe = _install_probe()
        captured = {}
        from kt_core import search as search_lib

        original_finish = search_lib._finish

        def finish(tuner, *args, **kwargs):  # the tuner's data, for the feeding estimate
            captured["data"] = tuner.data
            return original_finish(tuner, *args, **kwargs)

        search_lib._finish = finish
        try:
            with common.stdout_to_stderr(), common.Clock() as search:
                result = run_search(config, examples_dir=examples, label_key=common.LABEL,
                                    output_dir=os.path.join(tmp, "out"),
                                    module_file=common.PENGUIN_MODULE, save_best_model=False)
        finally:
            search_lib._finish = original_finish
            probe.remove()
        feed_s = _feed_pass_s(captured["data"], config)
        reread_s = _reread_pass_s(examples, "train", config.batch_size) + \
            _reread_pass_s(examples, "eval", config.batch_size)

    later = trials - 1
    ours_s = probe.after_first()
    fraction = ours_s / search.s
    return common.result(
        "data_reuse", ours_s, search.s, ratio=fraction,
        ratio_meaning="time spent reading/parsing input (files, tf.Example parsing, building "
                      "datasets) in trials 2..N / whole search time (lower is better)",
        goal=f"ratio < {GOAL}", goal_met=fraction < GOAL,
        trials=trials, completed_trials=sum(t["status"] == "COMPLETED" for t in result.trials),
        epochs=config.epochs, batch_size=config.batch_size, train_rows=rows, eval_rows=eval_rows,
        examples_mb=round(size_mb, 1), generate_examples_s=round(gen.s, 2),
        input_s_after_first_trial=round(ours_s, 6),
        input_calls_after_first_trial=probe.calls_after_first(),
        initial_load_s=round(probe.seconds.get(0, 0.0), 3),
        initial_load_fraction=round(probe.seconds.get(0, 0.0) / search.s, 4),
        first_trial_input_s=round(probe.seconds.get(1, 0.0), 4),
        in_memory_feed_pass_s=round(feed_s, 3),
        in_memory_feed_after_first_estimate_s=round(feed_s * config.epochs * later, 2),
        reread_pass_s=round(reread_s, 3),
        reread_every_epoch_after_first_estimate_s=round(reread_s * config.epochs * later, 2),
        reread_estimate_fraction=round(reread_s * config.epochs * later / search.s, 4),
        note="estimates are one measured pass times epochs x (trials - 1)")


CASES = {"data_reuse": data_reuse}
