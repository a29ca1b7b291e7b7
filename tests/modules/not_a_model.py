def build_model(hp):
    hp.Int("units", 1, 4)
    return "a string"
