"""A Transform preprocessing_fn: z-scores the four measurements, keeps the label."""
import tensorflow_transform as tft

FEATURES = ["body_mass_g", "culmen_depth_mm", "culmen_length_mm", "flipper_length_mm"]


def preprocessing_fn(inputs):
    outputs = {f"{name}_xf": tft.scale_to_z_score(inputs[name]) for name in FEATURES}
    outputs["species"] = inputs["species"]
    return outputs
