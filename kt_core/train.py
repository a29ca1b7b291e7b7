"""Training the module's model with chosen hyperparameters, and exporting it for serving.

The model is built exactly as a trial builds it (same hypermodel, same compile
overrides, same input layout), trained for the configured epochs, and exported
as a SavedModel whose `serving_default` signature takes serialized `tf.Example`s
(ready for TF Serving, the TFX Evaluator and Pusher).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Optional

from kt_core.config import TuningConfig
from kt_core.data import ExamplesData, assemble_inputs, prepare_columns
from kt_core.modules import resolve_hypermodel
from kt_core.search import _keras_object

log = logging.getLogger("kt_core")

SERVING_SIGNATURE = "serving_default"


@dataclasses.dataclass
class TrainedModel:
    model: Any
    history: Any
    layout: tuple
    hyperparameters: Any


def apply_compile_overrides(model, config: TuningConfig) -> None:
    """The config's optimizer/loss/metrics replace the module's, as in the search."""
    if not (config.optimizer or config.loss or config.metrics):
        return
    compiled = model.get_compile_config() or {}
    model.compile(
        optimizer=_keras_object(config.optimizer, "optimizers") or model.optimizer,
        loss=_keras_object(config.loss, "losses") or model.loss,
        metrics=([_keras_object(m, "metrics") for m in config.metrics] if config.metrics
                 else compiled.get("metrics")))


def train_model(config: TuningConfig, hyperparameters, data: ExamplesData,
                module_file: Optional[str], log_dir: Optional[str] = None) -> TrainedModel:
    """Builds the model for `hyperparameters` (keras_tuner.HyperParameters) and fits it."""
    import keras

    hypermodel = resolve_hypermodel(
        module_file, config.hypermodel, config.hypermodel_args,
        config.input_shape or data.image_shape(),
        config.classes or data.num_classes(config.train_split))
    hp = hyperparameters.copy()
    model = hypermodel.build(hp)
    apply_compile_overrides(model, config)
    layout, one_hot = data.layout_for(model), data.one_hot_depth(model)
    train = data.dataset(config.train_split, layout, config.batch_size, shuffle=config.shuffle,
                         seed=config.seed, one_hot=one_hot)
    val = data.dataset(config.eval_split, layout, config.batch_size, one_hot=one_hot)
    # Hyperband's best trial names the epochs it reached; otherwise the configured epochs.
    epochs = int(hp.values.get("tuner/epochs", config.max_epochs if config.tuner == "hyperband"
                               else config.epochs))
    callbacks = []
    if config.early_stopping is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            **{"monitor": config.objective_name, **config.early_stopping}))
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir))
    history = hypermodel.fit(hp, model, train, validation_data=val, epochs=epochs,
                             steps_per_epoch=config.train_steps, validation_steps=config.eval_steps,
                             callbacks=callbacks, verbose=config.verbose)
    return TrainedModel(model, history, layout, hp)


def export_serving_model(trained: TrainedModel, data: ExamplesData, export_dir: str,
                         transform_output_dir: Optional[str] = None) -> None:
    """SavedModel with `serving_default(examples: string[None]) -> {"outputs": ...}`.

    With a Transform graph, the signature parses *raw* examples and applies the
    transform, as TFX serving signatures do; otherwise it parses the features the
    model was trained on.
    """
    import keras
    import tensorflow as tf

    model, layout = trained.model, trained.layout
    archive = keras.export.ExportArchive()
    archive.track(model)
    if transform_output_dir:
        import tensorflow_transform as tft

        tft_output = tft.TFTransformOutput(transform_output_dir)
        tft_layer = tft_output.transform_features_layer()
        archive.track(tft_layer)
        raw_spec = dict(tft_output.raw_feature_spec())
        raw_spec.pop(data.label_key, None)

        def features(serialized):
            return tft_layer(tf.io.parse_example(serialized, raw_spec))
    else:
        spec = data.serving_feature_spec()

        def features(serialized):
            return prepare_columns(tf.io.parse_example(serialized, spec), data.image_features)

    def serve(serialized):
        return {"outputs": model(assemble_inputs(features(serialized), layout), training=False)}

    archive.add_endpoint(name=SERVING_SIGNATURE, fn=serve,
                         input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    archive.write_out(export_dir, verbose=False)
    log.info("serving model written to %s", export_dir)


def save_keras_model(model, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save(path)
