"""Cutting an ONNX model around a window of its nodes, so a candidate can run inside the rest of the model.

A reproducer is judged where the bug matters, on the model's labels: the window (a run of consecutive nodes in
the file's topological order) runs in the build under test, fed the real tensors ONNX Runtime computes at its
boundary for each witness image, and its outputs are spliced into the rest of the model, which ONNX Runtime
runs. Nodes before the window need not run again: their values at the cut are inputs of the rest
(`context`). `Constant` nodes are not counted as nodes of a window; the extractor copies each where it is
read, so a cut never turns a constant into an input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def compute_nodes(model) -> list[int]:
    """Indices in `model.graph.node` of the nodes a window is made of (all but `Constant`)."""
    return [i for i, n in enumerate(model.graph.node) if n.op_type != "Constant"]


@dataclass(frozen=True)
class Cut:
    """A window's boundary: what it reads, what it hands on, and what the rest reads from before it."""

    nodes: tuple[int, ...]  # indices in graph.node
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    context: tuple[str, ...]  # rest inputs that bypass the window
    later: tuple[int, ...]  # the nodes after it (empty: its outputs are the model's)


def cut(model, first: int, last: int) -> Cut:
    """The boundary of the window of compute nodes `first..last` (positions in `compute_nodes`)."""
    graph = model.graph
    order = compute_nodes(model)
    window, later = order[first:last + 1], order[last + 1:]
    fixed = {i.name for i in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output}

    def reads(nodes: list[int]) -> list[str]:
        made = {o for i in nodes for o in graph.node[i].output}
        seen: list[str] = []
        for i in nodes:
            for name in graph.node[i].input:
                if name and name not in fixed and name not in made and name not in seen:
                    seen.append(name)
        return seen

    made = [o for i in window for o in graph.node[i].output if o]
    rest_reads = reads(later)
    wanted = set(rest_reads) | {o.name for o in graph.output}
    outputs = tuple(o for o in made if o in wanted)
    return Cut(tuple(window), tuple(reads(window)), outputs, tuple(n for n in rest_reads if n not in outputs),
               tuple(later))


def window_model(model, c: Cut):
    """The window as a model of its own: its boundary inputs in, the tensors it hands on out."""
    import onnx

    return onnx.utils.Extractor(model).extract_model(list(c.inputs), list(c.outputs))


def rest_model(model, c: Cut):
    """The nodes after the window, reading the window's outputs and the context; None when there are none."""
    import onnx

    if not c.later:
        return None
    return onnx.utils.Extractor(model).extract_model(list(c.outputs) + list(c.context),
                                                     [o.name for o in model.graph.output])


def tensor_values(model, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Every tensor of the model (its input and each node's outputs) on each batch, from one ONNX Runtime
    session with all of them marked as outputs and its own graph rewrites off, so nothing is fused away."""
    import onnx

    from deltamut.localise.repro import session as reference_session

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    declared = {o.name for o in graph.output}
    for node in graph.node:
        for name in node.output:
            if name and name not in declared:
                graph.output.append(onnx.ValueInfoProto(name=name))
                declared.add(name)
    session = reference_session(model)
    names = [o.name for o in session.get_outputs()]
    feed = session.get_inputs()[0].name
    return [{feed: x, **dict(zip(names, session.run(names, {feed: x}), strict=True))} for x in batches]
