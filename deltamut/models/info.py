"""What the rest of the pipeline needs to know about a loaded model, in one record."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from deltamut.data.preprocessing import Preprocessing


@dataclass
class ModelInfo:
    """A model ready to export or run.

    `module` is in eval mode and float32 (None for an ONNX source, whose file is `onnx_path`).
    `class_names[i]` names class i (ImageNet's, or the model entry's `labels:` file); `label_set` says which.
    `pretrained` is False for seeded random weights: their outputs are meaningful for differential
    testing (same weights, different compilers) but not for accuracy against labels.
    """

    name: str
    arch: str
    module: nn.Module | None
    onnx_path: Path | None
    input_shape: tuple[int, int, int, int]
    preprocessing: Preprocessing
    num_classes: int
    label_set: str
    pretrained: bool
    weights: str | None
    seed: int | None
    class_names: list[str] = field(default_factory=list)
