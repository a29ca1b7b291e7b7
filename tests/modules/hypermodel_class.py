"""A HyperModel subclass, named by the config (`hypermodel: PenguinHyperModel`)."""
import keras
import keras_tuner


class PenguinHyperModel(keras_tuner.HyperModel):
    def __init__(self, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes

    def build(self, hp):
        model = keras.Sequential([
            keras.Input(shape=(4,)),
            keras.layers.Dense(hp.Int("units", 8, 32, step=8), activation="relu"),
            keras.layers.Dense(self.classes, activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-1, sampling="log")),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, **kwargs):
        # A HyperModel may tune fit arguments too; here: shuffle on or off.
        return model.fit(*args, shuffle=hp.Boolean("shuffle"), **kwargs)
