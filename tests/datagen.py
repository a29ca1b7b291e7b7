"""Small real TFRecord Examples artifacts, written with TensorFlow, for tests."""

import io
import os

import numpy as np

PENGUIN_EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "data", "penguins", "examples")


def _feature(value):
    import tensorflow as tf

    value = np.asarray(value)
    if value.dtype.kind == "f":
        return tf.train.Feature(float_list=tf.train.FloatList(value=value.ravel().tolist()))
    if value.dtype.kind in "iub":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=value.ravel().astype(int).tolist()))
    if value.dtype.kind in "SO":
        items = value.ravel().tolist() if value.ndim else [value.item()]
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=items))
    raise TypeError(value.dtype)


def write_split(path, columns, gzip=True):
    """columns: {name: array of shape [n, ...]} -> one TFRecord file of tf.Examples."""
    import tensorflow as tf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    n = len(next(iter(columns.values())))
    with tf.io.TFRecordWriter(path, options="GZIP" if gzip else None) as w:
        for i in range(n):
            feats = {k: _feature(v[i]) for k, v in columns.items()}
            w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())


def write_examples(root, splits, gzip=True):
    """splits: {split_name: columns}. Returns root (an Examples artifact directory)."""
    suffix = ".gz" if gzip else ""
    for split, columns in splits.items():
        write_split(os.path.join(root, f"Split-{split}", f"data_tfrecord-00000-of-00001{suffix}"),
                    columns, gzip)
    return root


def binary_columns(n, seed):
    """Two informative float features; label = f0 + f1 > 1 (an easy binary problem)."""
    rng = np.random.default_rng(seed)
    f0, f1 = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    return {"f0": f0, "f1": f1, "label": (f0 + f1 > 1).astype(np.int64)}


def png_image_columns(n, seed, size=32):
    """Encoded PNG images of two classes: bright top half (1) or bright bottom half (0)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = []
    for label in labels:
        img = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
        half = slice(0, size // 2) if label else slice(size // 2, size)
        img[half] += 150
        images.append(tf.io.encode_png(img).numpy())
    return {"image": np.array(images, dtype=object), "label": labels.astype(np.int64)}


def float_image_columns(n, seed, size=16):
    """Images as flat float arrays (h*w*c floats per example): bright top half (1) or
    bright bottom half (0), as the PNG images."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.random((n, size, size, 3), dtype=np.float32) * 0.2
    for i, label in enumerate(labels):
        images[i, (0 if label else size // 2):(size // 2 if label else size)] += 0.7
    return {"pixels": images.reshape(n, -1), "label": labels.astype(np.int64)}
