"""Reading a TFX Examples artifact once and feeding it to every trial.

Layout read: `<examples>/Split-<name>/*` holding TFRecord files of `tf.Example`
(gzipped when the name ends in `.gz`, as ExampleGen writes them).

The feature spec comes from a TFX `schema.pbtxt` when given, otherwise it is
inferred from the first records. Every split is parsed once per process, in
batches, into in-memory tensors; each trial then draws shuffled batches by index
(`tf.gather`), so no trial re-reads or re-parses a file.

How features reach a model depends on the model's inputs:
  * a model whose input names are feature names gets a dict of those features;
  * a single-input model gets one image feature (see `image_features`) when there
    is exactly one, otherwise all numeric features (label excluded) as one dense
    float32 vector, features in **sorted name order**, each flattened, cast to float.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)

# How many records are sampled to infer a feature spec when no schema is given.
_INFER_SAMPLE = 1000
_PARSE_BATCH = 4096


class DataError(ValueError):
    """Examples that cannot be read; the message names the file, split or feature."""


def split_files(examples_dir: str, split: str) -> List[str]:
    """The files of one split (local or gs:// paths)."""
    from tensorflow.io import gfile

    if not gfile.isdir(examples_dir):
        raise DataError(f"examples directory not found: {examples_dir}")
    split_dir = os.path.join(examples_dir, f"Split-{split}")
    if not gfile.isdir(split_dir):
        found = sorted(d.rstrip("/")[len("Split-"):] for d in gfile.listdir(examples_dir)
                       if d.startswith("Split-"))
        raise DataError(f"split {split!r} not found in {examples_dir} (expected {split_dir}); "
                        f"splits found: {found}")
    files = sorted(f for f in gfile.glob(os.path.join(split_dir, "*")) if not gfile.isdir(f))
    if not files:
        raise DataError(f"split {split!r} is empty: no files in {split_dir}")
    return files


def _compression(path: str) -> str:
    return "GZIP" if path.endswith(".gz") else ""


def _read_raw(path: str, limit: Optional[int] = None):
    """Yields serialized records of one file; a corrupt file raises naming it."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(path, compression_type=_compression(path))
    if limit:
        ds = ds.take(limit)
    try:
        for record in ds.as_numpy_iterator():
            yield record
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError) as e:
        raise DataError(f"corrupt or truncated TFRecord file {path}: {e.message.splitlines()[0]}") from None


# -- feature specs --------------------------------------------------------------

def feature_spec_from_schema(schema_path: str) -> Dict[str, "tf.io.FixedLenFeature"]:
    """Fixed-length features of a TFX schema; variable-length ones are left out (logged)."""
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    if not tf.io.gfile.exists(schema_path):
        raise DataError(f"schema file not found: {schema_path}")
    schema = schema_pb2.Schema()
    try:
        with tf.io.gfile.GFile(schema_path) as f:
            text_format.Parse(f.read(), schema)
    except text_format.ParseError as e:
        raise DataError(f"schema file {schema_path} is not a valid Schema pbtxt: {e}") from None
    dtypes = {schema_pb2.FLOAT: tf.float32, schema_pb2.INT: tf.int64, schema_pb2.BYTES: tf.string}
    spec, skipped = {}, []
    for feature in schema.feature:
        if feature.type not in dtypes:
            skipped.append(feature.name)
            continue
        if feature.HasField("shape"):
            shape = [d.size for d in feature.shape.dim]
        elif feature.HasField("value_count") and feature.value_count.min == feature.value_count.max > 0:
            shape = [] if feature.value_count.max == 1 else [feature.value_count.max]
        else:
            skipped.append(feature.name)
            continue
        spec[feature.name] = tf.io.FixedLenFeature(shape if shape != [1] else [], dtypes[feature.type])
    if skipped:
        log.warning("schema %s: features without a fixed length are not fed to models: %s",
                    schema_path, skipped)
    return spec


def infer_feature_spec(files: Sequence[str]) -> Dict[str, "tf.io.FixedLenFeature"]:
    """Infers fixed-length features from the first records of `files`."""
    import tensorflow as tf

    kinds: Dict[str, str] = {}
    lengths: Dict[str, set] = {}
    seen = 0
    for path in files:
        for raw in _read_raw(path, limit=_INFER_SAMPLE - seen):
            example = tf.train.Example()
            try:
                example.ParseFromString(raw)
            except Exception:
                raise DataError(f"file {path} holds a record that is not a tf.Example") from None
            for name, feature in example.features.feature.items():
                kind = feature.WhichOneof("kind")
                if kind is None:
                    continue
                if kinds.setdefault(name, kind) != kind:
                    raise DataError(f"feature {name!r} has mixed types ({kinds[name]}, {kind}) in {path}")
                lengths.setdefault(name, set()).add(len(getattr(feature, kind).value))
            seen += 1
        if seen >= _INFER_SAMPLE:
            break
    if seen == 0:
        raise DataError(f"no records in {', '.join(files)}")
    dtypes = {"float_list": tf.float32, "int64_list": tf.int64, "bytes_list": tf.string}
    spec, skipped = {}, []
    for name in sorted(kinds):
        if len(lengths[name]) != 1 or 0 in lengths[name]:
            skipped.append(name)
            continue
        (n,) = lengths[name]
        spec[name] = tf.io.FixedLenFeature([] if n == 1 else [n], dtypes[kinds[name]])
    if skipped:
        log.warning("features with varying length are not fed to models: %s", skipped)
    return spec


# -- parsed splits --------------------------------------------------------------

class ExamplesData:
    """The parsed splits of one Examples artifact, held in memory for all trials."""

    def __init__(self, examples_dir: str, label_key: str, schema_path: Optional[str] = None,
                 splits: Sequence[str] = ("train", "eval"),
                 image_features: Optional[Dict[str, Sequence[int]]] = None):
        self.examples_dir = examples_dir
        self.label_key = label_key
        self.image_features = {k: list(v) for k, v in (image_features or {}).items()}
        self.files = {split: split_files(examples_dir, split) for split in splits}
        first = self.files[splits[0]]
        self.feature_spec = (feature_spec_from_schema(schema_path) if schema_path
                             else infer_feature_spec(first))
        if label_key not in self.feature_spec:
            raise DataError(f"label key {label_key!r} is not a feature of the examples; "
                            f"features: {sorted(self.feature_spec)}")
        for name in self.image_features:
            if name not in self.feature_spec:
                raise DataError(f"image_features: {name!r} is not a feature of the examples; "
                                f"features: {sorted(self.feature_spec)}")
        self.splits: Dict[str, Dict[str, "tf.Tensor"]] = {
            split: self._parse_split(files) for split, files in self.files.items()}
        self._datasets: Dict[tuple, "tf.data.Dataset"] = {}

    # -- loading ----------------------------------------------------------

    def _parse_split(self, files: Sequence[str]) -> Dict[str, "tf.Tensor"]:
        import tensorflow as tf

        parts: Dict[str, list] = {name: [] for name in self.feature_spec}
        for path in files:
            ds = tf.data.TFRecordDataset(path, compression_type=_compression(path))
            ds = ds.batch(_PARSE_BATCH).map(lambda r: tf.io.parse_example(r, self.feature_spec),
                                            num_parallel_calls=tf.data.AUTOTUNE)
            try:
                for batch in ds:
                    for name, value in batch.items():
                        parts[name].append(value)
            except tf.errors.DataLossError as e:
                raise DataError(f"corrupt or truncated TFRecord file {path}: "
                                f"{e.message.splitlines()[0]}") from None
            except tf.errors.InvalidArgumentError as e:
                raise DataError(f"records in {path} do not match the feature spec "
                                f"{'(schema)' if self.feature_spec else ''}: "
                                f"{e.message.splitlines()[0]}") from None
        if not parts[self.label_key]:
            raise DataError(f"no records in {', '.join(files)}")
        columns = {name: tf.concat(values, axis=0) for name, values in parts.items()}
        return prepare_columns(columns, self.image_features)

    # -- what the data says about the model -------------------------------

    @property
    def input_features(self) -> List[str]:
        return sorted(n for n in self.feature_spec if n != self.label_key)

    @property
    def dense_features(self) -> List[str]:
        """The documented order of the single-vector input: sorted numeric features."""
        import tensorflow as tf

        return [n for n in self.input_features
                if n not in self.image_features and self.feature_spec[n].dtype != tf.string]

    def num_classes(self, split: str = "train") -> Optional[int]:
        """max(label) + 1 for integer labels, else None."""
        import tensorflow as tf

        label = self.splits[split][self.label_key]
        if label.dtype != tf.int64:
            return None
        return int(tf.reduce_max(label).numpy()) + 1

    def num_rows(self, split: str) -> int:
        return int(self.splits[split][self.label_key].shape[0])

    def image_shape(self) -> Optional[List[int]]:
        if len(self.image_features) == 1:
            return next(iter(self.image_features.values()))
        return None

    # -- feeding ----------------------------------------------------------

    def layout_for(self, model) -> Tuple[str, ...]:
        """Which features a model takes: its named inputs, else one image, else the dense vector."""
        try:
            inputs = list(model.inputs or [])
        except (AttributeError, ValueError):  # a Sequential model not built yet
            inputs = []
        names = [getattr(t, "name", "").split(":")[0] for t in inputs]
        if names and all(n in self.input_features for n in names):
            return ("dict",) + tuple(names)
        if len(self.image_features) == 1:
            return ("image", next(iter(self.image_features)))
        if not self.dense_features:
            raise DataError(f"no numeric features to feed a single-input model; "
                            f"features: {self.input_features}")
        return ("dense",) + tuple(self.dense_features)

    def _inputs(self, split: str, layout: Tuple[str, ...]):
        return assemble_inputs(self.splits[split], layout)

    def one_hot_depth(self, model) -> Optional[int]:
        """Integer labels are one-hot encoded for models trained with categorical
        cross-entropy (HyperResNet / HyperXception compile with it)."""
        import tensorflow as tf

        loss = getattr(model, "loss", None)
        name = loss if isinstance(loss, str) else type(loss).__name__
        label = self.splits[next(iter(self.splits))][self.label_key]
        if name not in ("categorical_crossentropy", "CategoricalCrossentropy"):
            return None
        if label.dtype != tf.int64 or label.shape.rank != 1:
            return None
        return int(model.outputs[0].shape[-1])

    def check_labels_fit(self, model) -> None:
        """Integer class labels must index the model's output. Out-of-range labels
        raise deep inside training on CPU, become NaN losses on GPU and all-zero
        rows when one-hot encoded: say so before any training, naming the label."""
        import tensorflow as tf

        loss = getattr(model, "loss", None)
        name = loss if isinstance(loss, str) else getattr(loss, "__name__", type(loss).__name__)
        kind = {"sparse_categorical_crossentropy": "classes",
                "SparseCategoricalCrossentropy": "classes",
                "categorical_crossentropy": "classes", "CategoricalCrossentropy": "classes",
                "binary_crossentropy": "binary", "BinaryCrossentropy": "binary",
                "binary_focal_crossentropy": "binary", "BinaryFocalCrossentropy": "binary"}.get(name)
        try:
            outputs = list(model.outputs or [])
        except (AttributeError, ValueError):
            outputs = []
        if kind is None or len(outputs) != 1 or outputs[0].shape[-1] is None:
            return
        units = int(outputs[0].shape[-1])
        for split, columns in self.splits.items():
            label = columns[self.label_key]
            if label.dtype != tf.int64 or label.shape.rank != 1 or label.shape[0] == 0:
                continue
            lo, hi = int(tf.reduce_min(label).numpy()), int(tf.reduce_max(label).numpy())
            if kind == "classes" and (lo < 0 or hi >= units):
                raise DataError(
                    f"label {self.label_key!r} has values {lo}..{hi} in split {split!r}, but the "
                    f"model's output has {units} units ({name}): class labels must be in "
                    f"0..{units - 1}; give the last layer {max(hi + 1, units)} units or remap the labels")
            if kind == "binary" and units == 1 and (lo < 0 or hi > 1):
                raise DataError(
                    f"label {self.label_key!r} has values {lo}..{hi} in split {split!r}, but the "
                    f"model's loss ({name}) takes labels 0 or 1")

    def dataset(self, split: str, layout: Tuple[str, ...], batch_size: int,
                shuffle: bool = False, seed: Optional[int] = None, one_hot: Optional[int] = None):
        """A batched (features, label) dataset, built once per split/layout and reused."""
        import tensorflow as tf

        key = (split, layout, batch_size, shuffle, seed, one_hot)
        if key not in self._datasets:
            x = self._inputs(split, layout)
            y = self.splits[split][self.label_key]
            if one_hot:
                y = tf.one_hot(y, one_hot)
            n = self.num_rows(split)
            ds = tf.data.Dataset.range(n)
            if shuffle:
                ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
            ds = ds.batch(batch_size).map(
                lambda i: (tf.nest.map_structure(lambda t: tf.gather(t, i), x), tf.gather(y, i)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            self._datasets[key] = ds.prefetch(tf.data.AUTOTUNE)
        return self._datasets[key]

    def serving_feature_spec(self) -> Dict[str, "tf.io.FixedLenFeature"]:
        """The spec a serving signature parses (label excluded)."""
        return {n: s for n, s in self.feature_spec.items() if n != self.label_key}


def assemble_inputs(columns, layout: Tuple[str, ...]):
    """Model inputs from parsed feature columns (in memory or a serving batch)."""
    import tensorflow as tf

    kind, names = layout[0], layout[1:]
    if kind == "dict":
        return {n: columns[n] for n in names}
    if kind == "image":
        return columns[names[0]]
    return tf.concat([tf.reshape(tf.cast(columns[name], tf.float32), [tf.shape(columns[name])[0], -1])
                      for name in names], axis=1)


def prepare_columns(columns, image_features):
    """Decodes/reshapes the image features of a batch of parsed columns."""
    columns = dict(columns)
    for name, shape in image_features.items():
        columns[name] = _to_images(columns[name], shape, name)
    return columns


def _to_images(column, shape, name):
    """Float arrays reshaped, or encoded JPEG/PNG bytes decoded, to float32 [N, h, w, c]."""
    import tensorflow as tf

    shape = list(shape)
    if column.dtype == tf.string:
        def decode(raw):
            image = tf.io.decode_image(raw, channels=shape[-1], expand_animations=False)
            image = tf.image.resize(image, shape[:2]) if image.shape[:2] != shape[:2] else image
            return tf.cast(tf.reshape(image, shape), tf.float32) / 255.0
        try:
            return tf.map_fn(decode, column, fn_output_signature=tf.float32)
        except tf.errors.InvalidArgumentError as e:
            raise DataError(f"image feature {name!r}: cannot decode as JPEG/PNG of shape {shape}: "
                            f"{e.message.splitlines()[0]}") from None
    try:
        return tf.reshape(tf.cast(column, tf.float32), [-1] + shape)
    except tf.errors.InvalidArgumentError:
        raise DataError(f"image feature {name!r} of shape {column.shape[1:]} cannot be "
                        f"reshaped to {shape}") from None
