"""A user's ONNX file -> the study's export artifact: its input shape fixed, its shape-only subgraphs folded,
and the result checked against the file as given, in ONNX Runtime, on the study's own images.

Exported classifiers usually declare a dynamic input (`[-1, 3, ?, ?]` or `[N, 3, H, W]` with named dims), and
older exporters compute reshape targets at run time (Shape -> Gather/Slice/Cast -> Concat -> Reshape). ONNX
Runtime runs such graphs; TVM's importer cannot reshape by a computed tensor ("Reshape requires the input new
shape to be Shape"). Once the input shape is fixed these subgraphs are constants, so they are folded before
any runtime sees the model, and every framework and the compiler then run the same graph.

Folding uses onnxscript's optimizer (`fold_constants`, `remove_unused_nodes`): it is the optimizer behind
PyTorch's own ONNX exporter, kept with ONNX's tooling, works on a plain ONNX graph without a session, and is
already how deltamut's own export is optimised. ONNX Runtime's offline optimisation (`optimized_model_filepath`)
was not chosen: its basic level also fuses batch norm into convs and may leave ORT-only ops, which would
change the layers MutateNN's operators act on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from deltamut.fsutil import atomic_path
from deltamut.numeric import max_abs_diff

RECORD_KEY = "deltamut.prepare"
# Folding computes shapes, never float arithmetic of the model's own data beyond what ONNX Runtime would do
# in the same order: its outputs must agree with the file's to float32 rounding.
FOLD_RTOL = 1e-5


def _data_input(model):
    from deltamut.models.onnx_source import data_inputs

    inputs = data_inputs(model)
    if len(inputs) != 1:
        raise ValueError(f"expected one image input, found {[i.name for i in inputs]}")
    return inputs[0]


def fix_input_shape(model, shape: tuple[int, ...]):
    """`model` with its image input's dims set to `shape` and every tensor's shape inferred from there (shape
    data propagated, so shape-computing nodes know their values); raises ValueError where a static dim of
    the file contradicts `shape`."""
    import onnx

    value = _data_input(model)
    dims = value.type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise ValueError(f"input {value.name!r} has {len(dims)} dims, not the {len(shape)} of {list(shape)}")
    for axis, (dim, size) in enumerate(zip(dims, shape, strict=True)):
        if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != size:
            raise ValueError(f"input {value.name!r} has static dim {axis} = {dim.dim_value}, not {size}")
        dim.Clear()
        dim.dim_value = size
    del model.graph.value_info[:]  # inferred for the old shape
    return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)


def _fold_constant_of_shape(node) -> bool | None:
    """onnxscript keeps every ConstantOfShape by default (it may materialise a large tensor); in a shape
    computation it is small (the legacy exporter builds EfficientNet's 'SAME' pads from one), and the folder's
    output-size limit still bounds it. None: the folder's own rule for every other op."""
    return True if node.op_type == "ConstantOfShape" else None


def fold_shape_subgraphs(model):
    """`model` with every subgraph whose value is now known (shape computations above all) folded into a
    constant and dead nodes removed."""
    import onnxscript.ir as ir
    import onnxscript.optimizer as optimizer

    graph = ir.serde.deserialize_model(model)
    optimizer.fold_constants(graph, should_fold=_fold_constant_of_shape)
    optimizer.remove_unused_nodes(graph)
    return ir.serde.serialize_model(graph)


def run_onnxruntime(model, images: np.ndarray, batch: int) -> np.ndarray:
    """The model's first output on `images` (N, C, H, W), `batch` at a time (a short last batch filled up by
    repeating the images from the first, even when there are fewer than `batch`), in ONNX Runtime on one
    thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outs = []
    for start in range(0, len(images), batch):
        count = min(batch, len(images) - start)
        padded = images[np.arange(start, start + batch) % len(images)]
        outs.append(session.run(None, {name: padded.astype(np.float32)})[0][:count])
    return np.concatenate(outs)


def _agreement(given, folded, images: np.ndarray, batch: int) -> tuple[float, float]:
    """max |Δ| between the file as given and the folded model in ONNX Runtime on the study's images, and the
    most that float32 rounding allows; ValueError when the file as given does not run there (a problem with
    the file, not with folding)."""
    try:
        reference = run_onnxruntime(given, images, batch)
    except Exception as exc:
        raise ValueError(f"ONNX Runtime cannot run it at input {list(images.shape[1:])} x batch {batch}: "
                         f"{type(exc).__name__}: {str(exc)[:300]}") from exc
    diff = float(max_abs_diff(reference, run_onnxruntime(folded, images, batch)))
    return diff, FOLD_RTOL * max(1.0, float(np.nanmax(np.abs(reference))))


def prepare_onnx(src: str | Path, out: str | Path, shape: tuple[int, int, int, int],
                 images: np.ndarray) -> dict[str, Any]:
    """Write `src` with its input fixed at `shape` and its shape subgraphs folded to `out`, once ONNX Runtime
    gives the same outputs for both on `images`; where folding changed them, the fixed but unfolded graph is
    written instead and the record says why. The record (what was done, node counts, max |Δ|, seconds) is
    returned and kept in the file's metadata under `deltamut.prepare`. Errors name the file."""
    import onnx

    src = Path(src)
    try:
        t0 = time.perf_counter()
        given = onnx.load(str(src))
        fixed = onnx.ModelProto()
        fixed.CopyFrom(given)
        fixed = fix_input_shape(fixed, shape)
        t1 = time.perf_counter()
        folded = fold_shape_subgraphs(fixed)
        t2 = time.perf_counter()
        diff, limit = _agreement(given, folded, images, shape[0])
        t3 = time.perf_counter()
    except ValueError as exc:
        raise ValueError(f"{src}: {exc}") from exc
    except Exception as exc:  # onnx's shape inference or the optimizer rejecting the graph
        raise ValueError(f"{src}: cannot fix its input at {list(shape)}: {type(exc).__name__}: "
                         f"{str(exc)[:300]}") from exc
    kept = diff <= limit  # NaN (a NaN only one of them gives) is not kept
    result = folded if kept else fixed
    record = {"source": str(src), "input_shape": list(shape), "nodes_given": len(given.graph.node),
              "nodes": len(result.graph.node), "folded": kept,
              "fold_check": {"images": len(images), "max_abs_diff": diff, "limit": limit},
              "seconds": {"fix": round(t1 - t0, 3), "fold": round(t2 - t1, 3), "check": round(t3 - t2, 3)}}
    if not kept:
        record["why_not_folded"] = (f"folding changed ONNX Runtime's outputs by {diff:.3g}, beyond the "
                                    f"{limit:.3g} that float32 rounding allows")
    mine = [p for p in result.metadata_props if p.key == RECORD_KEY]
    for prop in mine:
        result.metadata_props.remove(prop)
    result.metadata_props.add(key=RECORD_KEY, value=json.dumps(record))
    onnx.checker.check_model(result)
    with atomic_path(out) as tmp:
        onnx.save(result, str(tmp))
    return record


def prepared_record(path: str | Path) -> dict[str, Any] | None:
    """What `prepare_onnx` did to the file at `path` (None for a file it did not write)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    value = next((p.value for p in model.metadata_props if p.key == RECORD_KEY), None)
    return json.loads(value) if value else None
