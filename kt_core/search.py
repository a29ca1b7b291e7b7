"""Running a keras-tuner search on an Examples artifact.

keras-tuner does the searching: its oracles decide *what to try*
(RandomSearch, GridSearch, Hyperband, BayesianOptimization). `SearchTuner` only
decides *how a trial runs here*: it feeds the in-memory examples in the layout
the built model asks for, records each trial (see `results.TrialRecorder`), and
prints one progress line per finished trial.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Dict, List, Optional

from kt_core import fast_trials
from kt_core import results as results_lib
from kt_core.config import ConfigError, TuningConfig
from kt_core.data import ExamplesData
from kt_core.modules import (ModuleError, file_sha256, is_builtin, load_module,
                             resolve_hypermodel)

log = logging.getLogger("kt_core")

BEST_MODEL_FILE = "best_model.keras"
REPORT_FILE = "report.html"


class SearchError(RuntimeError):
    """The search ran but produced no usable result."""


@dataclasses.dataclass
class SearchResult:
    best_hyperparameters: Any  # keras_tuner.HyperParameters
    best_trial_id: str
    best_score: Optional[float]
    output_dir: str
    trials: List[Dict[str, Any]]
    best_model_path: Optional[str]


# -- oracles ------------------------------------------------------------------

def search_space(config: TuningConfig):
    """The config's `hyperparameters` section as a keras_tuner.HyperParameters."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    makers = {"int": hp.Int, "float": hp.Float, "choice": hp.Choice,
              "boolean": hp.Boolean, "fixed": hp.Fixed}
    for name, spec in config.hyperparameters.items():
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        try:
            makers[spec["type"]](name, **kwargs)
        except (ValueError, TypeError) as e:
            raise ConfigError(f"hyperparameters.{name}: {e}") from e
    return hp


def make_objective(config: TuningConfig):
    import keras_tuner

    if isinstance(config.objective, dict) and "direction" in config.objective:
        return keras_tuner.Objective(config.objective["name"], config.objective["direction"])
    return config.objective_name  # keras-tuner infers the direction from the name


def make_oracle(config: TuningConfig):
    from keras_tuner import oracles

    common = dict(
        objective=make_objective(config),
        hyperparameters=search_space(config),
        tune_new_entries=config.tune_new_entries,
        allow_new_entries=config.allow_new_entries,
        max_retries_per_trial=config.max_retries_per_trial,
        max_consecutive_failed_trials=config.max_consecutive_failed_trials,
        seed=config.seed,
    )
    if config.tuner == "random":
        return oracles.RandomSearchOracle(max_trials=config.max_trials, **common)
    if config.tuner == "grid":
        from kt_core.oracles import resumable_grid_search_oracle  # keras-tuner's forgets on reload

        return resumable_grid_search_oracle()(max_trials=config.max_trials, **common)
    if config.tuner == "bayesian":
        return oracles.BayesianOptimizationOracle(
            max_trials=config.max_trials, num_initial_points=config.num_initial_points,
            alpha=config.alpha, beta=config.beta, **common)
    return oracles.HyperbandOracle(max_epochs=config.max_epochs, factor=config.factor,
                                   hyperband_iterations=config.hyperband_iterations, **common)


# -- the tuner ------------------------------------------------------------------

def _tuner_classes():
    import keras_tuner
    from keras_tuner.src import utils as keras_tuner_utils
    from keras_tuner.src.engine import tuner_utils

    class SearchTuner(keras_tuner.Tuner):
        """A keras-tuner Tuner that feeds an `ExamplesData` and records every trial."""

        def __init__(self, oracle, hypermodel, data: ExamplesData, config: TuningConfig,
                     recorder: results_lib.TrialRecorder, **kwargs):
            # Explicitly Tuner's constructor: subclasses mixing in keras-tuner's
            # Hyperband must not build a second oracle.
            keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)
            self.data = data
            self.config = config
            self.recorder = recorder
            self._search_start = time.time()
            # (trial_id, epoch, logs) -> True to stop the trial now (parallel median stopping).
            self.trial_stopper = None

        def _build_and_fit_model(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            model = self._try_build(hp)
            train, val = self.datasets_for(model)
            self.recorder.execution_begin(trial.trial_id)
            from kt_core import trial_guards

            objective = self.oracle.objective
            # First, so that a diverged epoch fails the trial before it is reported.
            kwargs["callbacks"] = trial_guards.guards(
                [o.name for o in getattr(objective, "objectives", [objective])],
                started_at=self.recorder.started_at(trial.trial_id),
                trial_timeout=self.config.trial_timeout) + list(kwargs.get("callbacks") or [])
            # No per-batch sync for unused batch hooks; the best epoch's weights
            # written once, not at every improving epoch (see kt_core.fast_trials).
            kwargs["callbacks"], checkpoint = fast_trials.lighter_callbacks(
                self, kwargs.get("callbacks"))
            try:
                history = self.hypermodel.fit(
                    hp, model, train, *args, validation_data=val,
                    steps_per_epoch=self.config.train_steps,
                    validation_steps=self.config.eval_steps, **kwargs)
            finally:
                if checkpoint is not None:
                    checkpoint.flush()
            # Hyperband warm starts and load_model rebuild unbuilt models from this.
            keras_tuner_utils.save_json(self._get_build_config_fname(trial.trial_id),
                                        model.get_build_config())
            tuner_utils.validate_trial_results(history, self.oracle.objective, "HyperModel.fit()")
            return history

        def search(self, *args, **kwargs):
            # Each build's garbage collections skip what was alive before the search.
            with fast_trials.frozen_gc():
                return super().search(*args, **kwargs)

        def _try_build(self, hp):
            return fast_trials.try_build(self, hp)  # one garbage collection, not two

        def datasets_for(self, model):
            c = self.config
            layout, one_hot = self.data.layout_for(model), self.data.one_hot_depth(model)
            train = self.data.dataset(c.train_split, layout, c.batch_size, shuffle=c.shuffle,
                                      seed=c.seed, one_hot=one_hot)
            val = self.data.dataset(c.eval_split, layout, c.batch_size, one_hot=one_hot)
            return train, val

        def on_trial_begin(self, trial):
            super().on_trial_begin(trial)
            self.recorder.trial_begin(trial.trial_id)

        def on_epoch_end(self, trial, model, epoch, logs=None):
            self.recorder.epoch_end(trial.trial_id, epoch, logs)
            if self.trial_stopper is not None and self.trial_stopper(trial.trial_id, epoch, logs):
                model.stop_training = True

        def on_trial_end(self, trial):
            try:
                super().on_trial_end(trial)  # raises when too many trials failed in a row
            finally:  # ... and that last failed trial is recorded all the same
                record = self.recorder.trial_end(self.oracle.trials[trial.trial_id])
                if record is not None:  # None: a parallel worker; the coordinator reports
                    self._progress(record)

        def _progress(self, record):
            done = [r for r in self.recorder.records.values()]
            total = self.oracle.max_trials
            best = self.oracle.get_best_trials(1)
            best_txt = (f"best so far {best[0].score:.4g} (trial {best[0].trial_id})"
                        if best and best[0].score is not None else "no best yet")
            elapsed = time.time() - self._search_start
            eta = ""
            if total:
                remaining = max(total - len(done), 0)
                eta = f" ETA {remaining * elapsed / max(len(done), 1):.0f}s"
            score = record["score"]
            score_txt = f"{score:.4g}" if score is not None else "-"
            log.info("trial %d/%s %s %s score %s %s %.1fs%s", len(done), total or "?",
                     record["trial_id"], record["status"], score_txt, best_txt,
                     record["duration_s"], eta)

    class HyperbandSearchTuner(SearchTuner, keras_tuner.Hyperband):
        """Hyperband's run_trial/_build_hypermodel (epochs per bracket, warm start)."""

    return SearchTuner, HyperbandSearchTuner


def build_tuner(config: TuningConfig, hypermodel, data: ExamplesData, output_dir: str,
                oracle=None, recorder=None):
    """`oracle`/`recorder`: a parallel worker's stand-ins that talk to the coordinator."""
    SearchTuner, HyperbandSearchTuner = _tuner_classes()
    cls = HyperbandSearchTuner if config.tuner == "hyperband" else SearchTuner
    if recorder is None:
        recorder = results_lib.TrialRecorder(os.path.join(output_dir, results_lib.RESULTS_FILE),
                                             resume=not config.overwrite)
    return cls(
        oracle or make_oracle(config), hypermodel, data, config, recorder,
        optimizer=_keras_object(config.optimizer, "optimizers"),
        loss=_keras_object(config.loss, "losses"),
        metrics=[_keras_object(m, "metrics") for m in config.metrics] if config.metrics else None,
        executions_per_trial=config.executions_per_trial,
        max_model_size=config.max_model_size,
        directory=output_dir, project_name=config.project_name, overwrite=config.overwrite,
    )


def _keras_object(spec, kind):
    """A name stays a name (Keras resolves it); a {class_name, config} is deserialized."""
    if spec is None or isinstance(spec, str):
        return spec
    import keras

    try:
        return getattr(keras, kind).deserialize(spec)
    except Exception as e:
        raise ConfigError(f"{kind[:-1]}: cannot build {spec!r}: {e}") from e


# -- preflight ------------------------------------------------------------------

def preflight(tuner) -> None:
    """Builds one model with default values and evaluates one batch, before any
    training: catches non-models, uncompiled models, inputs that do not fit the
    data and objectives the model does not report."""
    import keras
    from keras_tuner import errors

    hp = tuner.oracle.get_space()
    try:
        model = tuner._try_build(hp)
    except errors.FatalError as e:
        raise ModuleError(f"build_model/hypermodel: {e}") from e
    except Exception as e:  # the default values may legitimately fail; trials will say
        log.warning("preflight: building with default hyperparameters raised %s: %s; "
                    "objective check skipped", type(e).__name__, e)
        return
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ModuleError("build_model/hypermodel returned an uncompiled model: call "
                          "model.compile(optimizer=..., loss=..., metrics=[...]) before returning it, "
                          "or set optimizer and loss in the tuning config")
    tuner.data.check_labels_fit(model)
    _, val = tuner.datasets_for(model)
    model.run_eagerly = True  # one batch: tracing a test function costs more than running it
    try:
        logs = model.evaluate(val.take(1), return_dict=True, verbose=0)
    except Exception as e:
        raise ModuleError(f"the model built with default hyperparameters cannot evaluate the "
                          f"examples ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    reported = sorted(set(logs) | {"val_" + k for k in logs})
    objective = tuner.oracle.objective
    names = [o.name for o in getattr(objective, "objectives", [objective])]
    for name in names:
        if name not in reported:
            raise ConfigError(f"objective: {name!r} is not reported by the model; it reports {reported}")
    del model
    keras.backend.clear_session()


# -- the whole search ---------------------------------------------------------------

def load_inputs(config: TuningConfig, examples_dir: str, label_key: str,
                module_file: Optional[str] = None, schema_path: Optional[str] = None,
                data: Optional[ExamplesData] = None):
    """(examples, hypermodel), loaded the same way here and in every parallel worker."""
    if module_file and not is_builtin(module_file):
        load_module(module_file)  # fail on a bad module before reading any data
    if data is None:
        data = ExamplesData(examples_dir, label_key, schema_path,
                            splits=(config.train_split, config.eval_split),
                            image_features=config.image_features)
    input_shape = config.input_shape or data.image_shape()
    classes = config.classes or data.num_classes(config.train_split)
    hypermodel = resolve_hypermodel(module_file, config.hypermodel, config.hypermodel_args,
                                    input_shape, classes)
    return data, hypermodel


def search_arguments(config: TuningConfig) -> Dict[str, Any]:
    """What `Tuner.search` gets, here and in every parallel worker."""
    callbacks = []
    if config.early_stopping is not None:
        import keras

        callbacks.append(keras.callbacks.EarlyStopping(
            **{"monitor": config.objective_name, **config.early_stopping}))
    return {"epochs": config.epochs, "callbacks": callbacks, "verbose": config.verbose}


@fast_trials.with_frozen_gc  # garbage collections skip the objects alive on entry
def run_search(config: TuningConfig, examples_dir: str, label_key: str, output_dir: str,
               module_file: Optional[str] = None, schema_path: Optional[str] = None,
               data: Optional[ExamplesData] = None, save_best_model: bool = True,
               launcher=None) -> SearchResult:
    """Validates everything it can, then searches, then writes the outputs.

    With `num_parallel_trials` > 1, median stopping or a `launcher` (overriding the
    config's) the trials run in worker processes/pods (kt_core.parallel)."""
    parallel = (config.num_parallel_trials > 1 or config.median_stopping is not None
                or launcher is not None)
    if parallel:
        from kt_core.parallel import devices

        devices.keep_gpus_for_workers()  # before this process touches a GPU
    data, hypermodel = load_inputs(config, examples_dir, label_key, module_file, schema_path, data)
    import tensorflow as tf

    tf.io.gfile.makedirs(output_dir)  # local or gs://
    if config.seed is not None:
        import keras

        keras.utils.set_random_seed(config.seed)

    tuner = build_tuner(config, hypermodel, data, output_dir)
    preflight(tuner)
    if config.overwrite:  # starting over: no result of the previous search may outlive it
        results_lib.remove_outputs(output_dir, (results_lib.BEST_HP_FILE, results_lib.RESULTS_FILE,
                                                BEST_MODEL_FILE, REPORT_FILE, "tensorboard"))
    _write_search_config(tuner, config, output_dir, examples_dir, label_key, module_file, schema_path)
    tuner.search_space_summary()
    try:
        if parallel:
            from kt_core.parallel.coordinator import search_in_parallel

            search_in_parallel(tuner, config, output_dir, examples_dir=examples_dir,
                               label_key=label_key, module_file=module_file,
                               schema_path=schema_path, launcher=launcher)
        else:
            tuner.search(**search_arguments(config))
    except RuntimeError as e:
        if "consecutive failures" in str(e):
            # keras-tuner's message is a headline and the last trial's traceback:
            # one line for the user (the traceback stays in tuner_results.json / the log).
            lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
            raise SearchError(
                f"search stopped: {config.max_consecutive_failed_trials} trials failed in a row "
                f"(max_consecutive_failed_trials: {config.max_consecutive_failed_trials}); "
                f"last error: {lines[-1] if len(lines) > 1 else '(none recorded)'}") from None
        raise
    tuner.results_summary(num_trials=5)
    return _finish(tuner, output_dir, save_best_model)


def _write_search_config(tuner, config, output_dir, examples_dir, label_key, module_file,
                         schema_path):
    """What this search is, next to its results: config, objective, inputs, module hash."""
    import json

    objective = tuner.oracle.objective
    results_lib.atomic_write(os.path.join(output_dir, results_lib.SEARCH_CONFIG_FILE), json.dumps({
        "config": config.to_dict(),
        "objective": {"name": objective.name, "direction": objective.direction},
        "examples": examples_dir, "schema": schema_path, "label_key": label_key,
        "module_file": module_file,
        "module_sha256": (file_sha256(module_file)
                          if module_file and not is_builtin(module_file) else None),
        "dense_feature_order": tuner.data.dense_features,
    }, indent=1, sort_keys=True))


def write_reports(output_dir: str) -> None:
    """The HTML report and TensorBoard HParams logs next to the results. Drawing can fail
    (a plotting bug, a full disk) without losing the search: it is logged, not raised."""
    from kt_core.report import write_html_report
    from kt_core.tensorboard_logs import write_hparams_logs

    try:
        write_hparams_logs(output_dir)
        path = write_html_report(output_dir, os.path.join(output_dir, REPORT_FILE))
        log.info("report: %s", path)
    except Exception as e:  # noqa: BLE001 - see docstring
        log.warning("could not write the report/TensorBoard logs in %s: %s: %s",
                    output_dir, type(e).__name__, e)


def _finish(tuner, output_dir: str, save_best_model: bool) -> SearchResult:
    best_trials = tuner.oracle.get_best_trials(1)
    if not best_trials:
        errors = [r.get("error") for r in tuner.recorder.records.values() if r.get("error")]
        raise SearchError("no trial completed" + (f"; last error: {errors[-1]}" if errors else ""))
    best = best_trials[0]
    results_lib.write_best_hyperparameters(
        os.path.join(output_dir, results_lib.BEST_HP_FILE), best.hyperparameters)
    best_model_path = None
    if save_best_model:
        import warnings

        best_model_path = os.path.join(output_dir, BEST_MODEL_FILE)
        with warnings.catch_warnings():  # the checkpoint holds optimizer slots we do not need
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            tuner.get_best_models(1)[0].save(best_model_path)
    log.info("best trial %s score %s: %s", best.trial_id, best.score, best.hyperparameters.values)
    write_reports(output_dir)
    return SearchResult(
        best_hyperparameters=best.hyperparameters, best_trial_id=best.trial_id,
        best_score=best.score, output_dir=output_dir,
        trials=[tuner.recorder.records[t] for t in tuner.recorder._order],
        best_model_path=best_model_path)
