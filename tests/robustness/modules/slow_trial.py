"""One value trains slowly (2 s per batch, so an epoch of the penguins takes about
30 s at batch size 16): a trial_timeout must stop it, and the search go on."""
import time

import keras
import keras_tuner

SECONDS_PER_BATCH = 2.0


class SlowBatches(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):  # in the training thread, always
        time.sleep(SECONDS_PER_BATCH)


class SometimesSlow(keras_tuner.HyperModel):
    def build(self, hp):
        units = hp.Choice("units", [4, 5, 8])
        model = keras.Sequential([keras.Input(shape=(4,)),
                                  keras.layers.Dense(units, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        if hp.get("units") == 5:
            callbacks = list(callbacks or []) + [SlowBatches()]
        return model.fit(*args, callbacks=callbacks, **kwargs)


hypermodel = SometimesSlow()
