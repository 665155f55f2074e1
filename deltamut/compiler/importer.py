"""ONNX -> graph-level Relax: the module every optimisation and mutation starts from."""

from __future__ import annotations

from pathlib import Path


def import_onnx(path: str | Path, input_shape: tuple[int, ...] | None = None):
    """Import an ONNX file with weights as constants, so graph passes can fold them and model-level
    mutations can reach them. The input shape defaults to the (static) one declared in the file."""
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    from deltamut.models.onnx_source import data_inputs

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: ONNX file not found") from exc
    except Exception as exc:
        raise ValueError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    graph_inputs = [i.name for i in data_inputs(model)]
    if len(graph_inputs) != 1:
        raise ValueError(f"{path}: expected one image input, found {graph_inputs}")
    if input_shape is None:
        dims = [d.dim_value for d in next(i for i in model.graph.input if i.name == graph_inputs[0])
                .type.tensor_type.shape.dim]
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(f"{path}: input {graph_inputs[0]!r} has no static shape ({dims}); give input_shape")
        input_shape = tuple(dims)
    try:
        return from_onnx(model, shape_dict={graph_inputs[0]: list(input_shape)}, keep_params_in_input=False)
    except Exception as exc:
        node = failing_node(exc)
        if node is None:
            raise
        raise ValueError(f"{path}: TVM cannot import node {node.name!r} ({node.op_type}): "
                         f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}") from exc


def failing_node(exc: BaseException):
    """The ONNX node TVM's importer was converting when it raised `exc`, read from the traceback (the importer
    names neither the node nor its op in its errors), or None when the error came from elsewhere."""
    node, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_construct_nodes":
            node = tb.tb_frame.f_locals.get("node", node)
        tb = tb.tb_next
    return node


def import_exported_program(path: str | Path):
    """Import a saved `torch.export` program, weights as constants like `import_onnx`, one tensor out."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    path = Path(path)
    try:
        program = torch.export.load(str(path))
    except FileNotFoundError as exc:
        raise ValueError(f"{path}: exported program not found") from exc
    except Exception as exc:
        raise ValueError(f"{path}: not a readable torch.export program ({type(exc).__name__}: {exc})") from exc
    return from_exported_program(program, keep_params_as_input=False, unwrap_unit_return_tuple=True)


def import_graph(path: str | Path):
    """The Relax module of an exported model, by file kind: `.pt2` (torch.export) or ONNX."""
    return import_exported_program(path) if Path(path).suffix == ".pt2" else import_onnx(path)
