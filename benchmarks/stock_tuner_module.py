"""A `tuner_fn` for the stock tfx.components.Tuner doing what our Tuner does in the
pipeline benchmark: RandomSearch over pipelines/penguin_module.py's build_model, the
same objective, trials, epochs, batch size and seed, each epoch one full pass over
the train split (finite datasets, no steps), validated on the whole eval split.

Settings come in `custom_config`: max_trials, epochs, batch_size, seed, objective.
"""
import os
import sys

import keras_tuner
import tensorflow as tf
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

LABEL = "species"


def _dataset(fn_args, files, schema, batch_size, shuffle, seed):
    options = tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL,
                                             num_epochs=1, shuffle=shuffle, shuffle_seed=seed)
    ds = fn_args.data_accessor.tf_dataset_factory(files, options, schema)
    # Our Tuner's single-input layout: numeric features in sorted name order, one vector.
    return ds.map(lambda x, y: (tf.concat([tf.reshape(tf.cast(x[f], tf.float32), [-1, 1])
                                           for f in sorted(x)], axis=1), y))


def tuner_fn(fn_args):
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pipelines.penguin_module import build_model

    c = fn_args.custom_config
    schema = io_utils.parse_pbtxt_file(fn_args.schema_path, schema_pb2.Schema())
    tuner = keras_tuner.RandomSearch(build_model, objective=c["objective"],
                                     max_trials=c["max_trials"], seed=c["seed"],
                                     directory=fn_args.working_dir, project_name="stock")
    train = _dataset(fn_args, fn_args.train_files, schema, c["batch_size"], True, c["seed"])
    val = _dataset(fn_args, fn_args.eval_files, schema, c["batch_size"], False, None)
    return tfx.components.TunerFnResult(
        tuner=tuner, fit_kwargs={"x": train, "validation_data": val, "epochs": c["epochs"],
                                 "verbose": 0})
