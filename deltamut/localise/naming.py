"""Kernels named in ONNX terms, by value: which ONNX node's output each kernel of a build computes.

TVM 0.27's Relax ONNX frontend keeps no node names (no spans; bindings are `lv, lv1, ...`) and fusion renames
what is left (`fused_conv2d_add_relu`), so names cannot be tracked into the kernels. Values can: on a build
that agrees with ONNX Runtime, a kernel's output equals, within float32 rounding, the ONNX tensor it computes
(a fused kernel's output is its group's last node's). ONNX Runtime gives every tensor when each is marked as
an output and its own graph rewrites are off, so nothing is fused away on that side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deltamut.numeric import relative_diff

#: A kernel output is that ONNX tensor when they agree this closely (relative to the tensor's largest value).
MATCH_REL = 1e-4


def onnx_tensors(onnx_path: str | Path, x: np.ndarray) -> dict[str, dict[str, Any]]:
    """Every floating-point node output of the model on batch `x` (deltamut.localise.splice.tensor_values):
    tensor name -> {node, op_type, order (the node's topological position), value}."""
    import onnx

    from deltamut.localise.splice import tensor_values

    model = onnx.load(str(onnx_path))
    values = tensor_values(model, [x])[0]
    out = {}
    for order, node in enumerate(model.graph.node):
        for name in node.output:
            value = values.get(name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                out[name] = {"node": node.name or f"{node.op_type}_{order}", "op_type": node.op_type,
                             "order": order, "value": value}
    return out


def name_kernels(outputs: list[tuple[str, np.ndarray]], tensors: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """For each kernel output (in call order), the ONNX tensor it equals, or None.

    A tensor matches when it has the kernel output's number of elements (layouts may differ by a reshape) and
    agrees within MATCH_REL; among several (ReLU after ReLU) the earliest not yet taken after the last match
    wins, since kernels run in a topological order of the graph.
    """
    named: list[dict[str, Any]] = []
    last_order = -1
    taken: set[str] = set()
    for _name, value in outputs:
        best = None
        for tname, t in tensors.items():
            if tname in taken or t["value"].size != value.size:
                continue
            rel = relative_diff(t["value"].reshape(-1), value.reshape(-1))
            if not rel <= MATCH_REL:
                continue
            key = (t["order"] < last_order, t["order"], rel)
            if best is None or key < best[0]:
                best = (key, tname, rel)
        if best is None:
            named.append({"tensor": None, "node": None, "op_type": None, "match_rel": None})
            continue
        _, tname, rel = best
        taken.add(tname)
        last_order = tensors[tname]["order"]
        t = tensors[tname]
        named.append({"tensor": tname, "node": t["node"], "op_type": t["op_type"], "match_rel": rel})
    return named
