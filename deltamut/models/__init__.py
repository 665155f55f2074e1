"""The model zoo: turns a study's model entry into a ready model (torch module or checked ONNX file).

Entry points: `load_model(name, spec)`, `zoo_names()`, `class_names(label_set)`, and the `ModelInfo`
record that later stages read (preprocessing, input shape, whether weights are trained).

Attributes load lazily, so that torch-free code (planning a study checks `names.ZOO_ARCHS`) can import
submodules of this package without paying for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from deltamut.models.errors import ModelError

_LAZY = {"ModelInfo": "info", "class_names": "labels", "load_model": "zoo", "zoo_names": "zoo"}

__all__ = ["ModelError", "ModelInfo", "class_names", "load_model", "zoo_names"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"deltamut.models.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'deltamut.models' has no attribute {name!r}")
