"""One value poisons the activations with NaN: its loss is NaN from the first batch,
while its accuracy stays a finite number (argmax of NaN is class 0)."""
import keras


def build_model(hp):
    weights = hp.Choice("weights", ["normal", "poisoned", "wide"])
    layers = [keras.Input(shape=(4,)),
              keras.layers.Dense(16 if weights == "wide" else 8, activation="relu")]
    if weights == "poisoned":
        layers.append(keras.layers.Lambda(lambda t: t * float("nan")))
    layers.append(keras.layers.Dense(3, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
