"""A module exposing `hypermodel`: a keras_tuner.HyperModel instance."""
import keras
import keras_tuner


class _Small(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential([keras.Input(shape=(4,)),
                                  keras.layers.Dense(hp.Choice("units", [4, 8]), activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


hypermodel = _Small()
