"""One exception type for every way a model entry of the study can be wrong."""


class ModelError(ValueError):
    """A model cannot be loaded as the config describes it; the message names the model and the culprit."""
