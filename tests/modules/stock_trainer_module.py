"""A `run_fn` for the stock tfx.components.Trainer, fed our best_hyperparameters."""
import json
import os

import keras
import keras_tuner
import tensorflow as tf
from tfx_bsl.public import tfxio

FEATURES = ["body_mass_g", "culmen_depth_mm", "culmen_length_mm", "flipper_length_mm"]


def _dataset(fn_args, files, schema):
    ds = fn_args.data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=16, label_key="species"), schema)
    return ds.map(lambda x, y: (tf.concat([tf.reshape(tf.cast(x[f], tf.float32), [-1, 1])
                                           for f in FEATURES], axis=1), y))


def run_fn(fn_args):
    from tfx.utils import io_utils
    from tensorflow_metadata.proto.v0 import schema_pb2

    hp = keras_tuner.HyperParameters.from_config(fn_args.hyperparameters)
    with open(os.path.join(fn_args.model_run_dir, "hyperparameters_seen.json"), "w") as f:
        json.dump(hp.values, f)
    schema = io_utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())
    from pipelines.penguin_module import build_model

    model = build_model(hp)
    model.fit(_dataset(fn_args, fn_args.train_files, schema), steps_per_epoch=fn_args.train_steps,
              validation_data=_dataset(fn_args, fn_args.eval_files, schema),
              validation_steps=fn_args.eval_steps, epochs=1, verbose=0)
    model.export(fn_args.serving_model_dir)
