"""Conditional space: the number of layers decides which units_i exist."""
import keras


def build_model(hp):
    inputs = keras.Input(shape=(4,))
    x = inputs
    for i in range(hp.Int("num_layers", 1, 3)):
        x = keras.layers.Dense(units=hp.Int(f"units_{i}", min_value=4, max_value=32, step=4),
                               activation=hp.Choice("activation", ["relu", "tanh"]))(x)
    if hp.Boolean("dropout"):
        x = keras.layers.Dropout(rate=0.25)(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    lr = hp.Float("lr", min_value=1e-3, max_value=1e-1, sampling="log")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
