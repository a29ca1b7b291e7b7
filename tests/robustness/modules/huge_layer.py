"""One value asks for a Dense layer of 2**46 units: its 4 x 2**46 float32 kernel
is 1 PiB, more than any process can address, so TensorFlow's allocator refuses
it (ResourceExhaustedError, "OOM when allocating tensor") without touching memory.
Safe on any machine, whatever its overcommit setting."""
import keras

HUGE = 2 ** 46


def build_model(hp):
    units = hp.Choice("units", [8, HUGE, 16])
    model = keras.Sequential([keras.Input(shape=(4,)),
                              keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
