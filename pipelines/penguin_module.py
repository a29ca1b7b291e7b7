"""The demo's module file: the keras-tuner idiom, nothing pipeline-specific.

The four penguin measurements arrive as one dense vector (sorted feature names);
the label `species` is 0, 1 or 2.
"""

import keras


def build_model(hp):
    inputs = keras.Input(shape=(4,))
    x = inputs
    for i in range(hp.Int("num_layers", 1, 3)):
        x = keras.layers.Dense(hp.Int(f"units_{i}", 8, 64, step=8), activation="relu")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-3, 1e-1, sampling="log")),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
