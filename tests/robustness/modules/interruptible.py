"""For the interrupted-search test. Copied next to a `block` flag file: while that
file exists, the trial with 16 units writes `started` next to it and waits inside
its first training batch, so the test can SIGKILL the search mid-trial."""
import os
import time

import keras
import keras_tuner

HERE = os.path.dirname(os.path.abspath(__file__))
BLOCK = os.path.join(HERE, "block")
STARTED = os.path.join(HERE, "started")


class WaitWhileBlocked(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        if os.path.exists(BLOCK):
            with open(STARTED, "w") as f:
                f.write(str(os.getpid()))
        while os.path.exists(BLOCK):
            time.sleep(0.05)


class Interruptible(keras_tuner.HyperModel):
    def build(self, hp):
        units = hp.Choice("units", [4, 8, 16, 32])
        model = keras.Sequential([keras.Input(shape=(4,)),
                                  keras.layers.Dense(units, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        if hp.get("units") == 16:
            callbacks = list(callbacks or []) + [WaitWhileBlocked()]
        return model.fit(*args, callbacks=callbacks, **kwargs)


hypermodel = Interruptible()
