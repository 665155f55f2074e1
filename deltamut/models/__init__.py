"""The model zoo: turns a study's model entry into a ready model (torch module or checked ONNX file).

Entry points: `load_model(name, spec)`, `zoo_names()`, `class_names(label_set)`, and the `ModelInfo`
record that later stages read (preprocessing, input shape, whether weights are trained).
"""

from deltamut.models.errors import ModelError
from deltamut.models.info import ModelInfo
from deltamut.models.labels import class_names
from deltamut.models.zoo import load_model, zoo_names

__all__ = ["ModelError", "ModelInfo", "class_names", "load_model", "zoo_names"]
