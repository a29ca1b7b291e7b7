"""Writes data/penguins/examples: the bundled penguins CSV as a TFX Examples artifact.

Split-train / Split-eval (2:1, deterministic by row hash as ExampleGen splits),
gzipped TFRecords of tf.Example: four float features and the int64 label `species`.
Run: .venv/bin/python scripts/make_penguin_examples.py
"""

import csv
import hashlib
import os

import tensorflow as tf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "penguins")


def main():
    with open(os.path.join(ROOT, "csv", "penguins_processed.csv")) as f:
        rows = list(csv.DictReader(f))
    out = {}
    for split in ("train", "eval"):
        d = os.path.join(ROOT, "examples", f"Split-{split}")
        os.makedirs(d, exist_ok=True)
        out[split] = tf.io.TFRecordWriter(os.path.join(d, "data_tfrecord-00000-of-00001.gz"),
                                          options="GZIP")
    for row in rows:
        feature = {k: tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
                   for k, v in row.items() if k != "species"}
        feature["species"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(row["species"])]))
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        bucket = int(hashlib.md5(",".join(row.values()).encode()).hexdigest(), 16) % 3
        out["eval" if bucket == 0 else "train"].write(example.SerializeToString())
    for w in out.values():
        w.close()


if __name__ == "__main__":
    main()
