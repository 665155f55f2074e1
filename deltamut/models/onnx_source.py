"""Models that arrive as ONNX files: checked up front, so a bad file fails when loaded, not mid-pipeline."""

from __future__ import annotations

from pathlib import Path

import onnx

from deltamut.models.errors import ModelError


def check_onnx(path: Path) -> onnx.ModelProto:
    """The graph (without external weights), after `onnx.checker` accepted the whole file."""
    if not path.is_file():
        raise ModelError(f"ONNX file {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(str(path))
    except Exception as exc:  # protobuf DecodeError, ValidationError, OSError, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(f"ONNX file {path} is not a valid ONNX model: {type(exc).__name__}: {first}") \
            from exc
    return model


def _dims(value: onnx.ValueInfoProto) -> list[int | None]:
    """Static dims as ints; symbolic, unknown and placeholder ones (-1 or 0, which some exporters write for a
    dynamic dim) as None."""
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in shape.dim]


def data_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs that are not initializers (old exporters list weights as inputs too)."""
    weights = {init.name for init in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in weights]


def graph_input_dims(model: onnx.ModelProto, path: Path) -> list[int | None]:
    """Dims of the image input: the one data input."""
    inputs = data_inputs(model)
    if len(inputs) != 1:
        raise ModelError(f"ONNX file {path} has {len(inputs)} data inputs "
                         f"({', '.join(i.name for i in inputs)}); an image classifier needs exactly one")
    dims = _dims(inputs[0])
    if len(dims) != 4:
        shown = ["?" if d is None else d for d in dims]
        raise ModelError(f"ONNX file {path}: input {inputs[0].name!r} has shape {shown}, not an image batch "
                         "(N x C x H x W or N x H x W x C)")
    return dims


def graph_num_classes(model: onnx.ModelProto) -> int | None:
    """Width of the first output when it is a static N x C tensor, else None."""
    dims = _dims(model.graph.output[0]) if model.graph.output else []
    return dims[-1] if len(dims) == 2 and dims[-1] else None
