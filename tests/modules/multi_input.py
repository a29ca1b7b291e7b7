"""A model with named inputs: each feature arrives as its own input."""
import keras


def build_model(hp):
    f0 = keras.Input(shape=(1,), name="f0")
    f1 = keras.Input(shape=(1,), name="f1")
    x = keras.layers.Concatenate()([f0, f1])
    x = keras.layers.Dense(hp.Int("units", 4, 16, step=4), activation="relu")(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model({"f0": f0, "f1": f1}, out)
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    return model
