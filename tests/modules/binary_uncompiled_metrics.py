"""A binary classifier compiled with accuracy only; the tests override the metrics."""
import keras


def build_model(hp):
    model = keras.Sequential([
        keras.Input(shape=(2,)),
        keras.layers.Dense(hp.Int("units", 4, 16, step=4), activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model
