"""Named mode: every ONNX tensor of the model an output, in TVM and in the reference, read node by node.

Kernel mode (deltamut.localise.kernels) reads the real builds and names their kernels by value, so a tensor
that lives inside a fused kernel is never seen. Named mode rebuilds the model from its ONNX file with every
floating-point node output appended to the graph's outputs (TVM's importer then returns them all, in that
order), so every node is read under its own name, fused or not. The price is the one Polygraphy warns of for
TensorRT: a tensor that is an output cannot stay private to a fused kernel, so the marked build is fused
otherwise (in TVM 0.27 `fused_conv2d_relu` becomes `conv2d` and `relu`). A fault that needs one fusion (LLVM
fast-math folding an add and a subtract that share a kernel) can vanish from the marked build: the record says
so (`vanished`: the marked build's own logits no longer satisfy the finding's predicate), and kernel mode,
which perturbs nothing, is the one to read then.

Per node and witness image: the error of its output against the reference's (relative to the reference
tensor's largest magnitude, as kernel mode measures), the largest such error among its inputs, its noise floor
and the growth across it, err(out) / max(err(inputs), floor): how much the node adds by itself rather than
carries. A node *departs* when its output's error exceeds its floor; the root on an image is the first node in
the file's topological order that departs while none of its inputs does (a weight, a constant, the image
itself never departs); over the witnesses the root is the node that is root on the most images, the earliest
on a tie. The ranking is by median growth over the images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deltamut.numeric import relative_diff

#: How many of the nodes with the largest growth a record lists.
TOP = 3


def mark_all(model) -> tuple[Any, list[str]]:
    """A copy of `model` with every floating-point node output (but constants') appended to its outputs, typed
    by ONNX shape inference; and the names of all its outputs, the declared ones first, in output order."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    typed = {v.name: v for v in inferred.graph.value_info}
    marked = onnx.ModelProto.FromString(model.SerializeToString())
    declared = [o.name for o in marked.graph.output]
    for node in marked.graph.node:
        if node.op_type == "Constant":
            continue
        for name in node.output:
            info = typed.get(name)
            if not name or name in declared or info is None:
                continue
            if onnx.helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type).kind != "f":
                continue
            marked.graph.output.append(info)
            declared.append(name)
    return marked, declared


def build_marked(model, spec: dict[str, Any], target: dict[str, Any], workdir: str | Path,
                 mutation: dict[str, Any] | None = None, name: str = "marked") -> dict[str, Any]:
    """The marked model through deltamut's stages under configuration `spec` (import, the mutation where one
    is given, as the mutate stage applies a graph- or model-level operator: on the graph as imported, before
    the graph passes; graph passes, lowering, schedules, compile); returns the library, the output names and
    the mutation's sites there."""
    import onnx

    from deltamut.compiler.build import build_library
    from deltamut.compiler.importer import import_onnx
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.passes import lower, optimise_graph

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    marked, names = mark_all(model)
    onnx_path = workdir / f"{name}.onnx"
    onnx.save(marked, str(onnx_path))
    opt = OptConfig.from_dict(name, spec)
    graph = import_onnx(onnx_path)
    onnx_path.unlink()
    record: dict[str, Any] = {"names": names}
    if mutation is None:
        module = lower(optimise_graph(graph, opt), opt)
    else:
        from deltamut.mutations import mutate

        mutant = mutate(graph, mutation, lambda g: lower(optimise_graph(g, opt), opt))
        module = mutant.module
        record["sites"] = mutant.manifest["sites"]
    record["lib"] = str(workdir / f"{name}.so")
    build_library(module, target, opt, record["lib"])
    return record


def run_marked(lib: str | Path, names: list[str], images: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Every marked tensor of the build on each image (a batch of one), by ONNX name."""
    import tvm
    from tvm.runtime.vm import VirtualMachine

    vm = VirtualMachine(tvm.runtime.load_module(str(lib)), tvm.cpu())
    out = []
    for x in images:
        values = vm["main"](tvm.runtime.tensor(np.ascontiguousarray(x[None])))
        values = [values] if hasattr(values, "numpy") else list(values)
        out.append({n: v.numpy() for n, v in zip(names, values, strict=True)})
    return out


def _error(ref: np.ndarray | None, other: np.ndarray | None) -> float:
    """Relative error; a shape change, a NaN or an inf is an infinite one (it departs, whatever the floor)."""
    if ref is None or other is None:
        return float("nan")
    rel = relative_diff(ref, other)
    return rel if np.isfinite(rel) else float("inf")


def node_table(model, values: list[dict[str, np.ndarray]], reference: list[dict[str, np.ndarray]],
               floors: list[dict[str, np.ndarray]] | None, ids: list[str], tolerance: float) -> pd.DataFrame:
    """One row per compared node output and image (module doc): `values` against `reference`, with the floor
    of each tensor the larger of `tolerance` and four times `floors`' own error against `reference` there (the
    reference configuration's, or a rerun's)."""
    rows = []
    for image, mine, ref, noise in zip(ids, values, reference, floors or [None] * len(ids), strict=True):
        err: dict[str, float] = {}
        departs: dict[str, bool] = {}
        for order, node in enumerate(model.graph.node):
            ins = [n for n in node.input if n in err]
            in_err = max((err[n] for n in ins), default=0.0)
            for tensor in node.output:
                if tensor not in mine or tensor not in ref:
                    continue
                e = _error(ref[tensor], mine[tensor])
                floor = max(tolerance, 4 * _error(ref[tensor], noise[tensor]) if noise and tensor in noise else 0.0)
                err[tensor], departs[tensor] = e, bool(e > floor)
                rows.append({"image": image, "order": order, "node": node.name or f"{node.op_type}_{order}",
                             "op_type": node.op_type, "tensor": tensor, "shape": "x".join(map(str, ref[tensor].shape)),
                             "scale": float(np.max(np.abs(ref[tensor]), initial=0.0)), "err_rel": e,
                             "in_err_rel": in_err, "floor_rel": floor, "departs": departs[tensor],
                             "inputs_depart": any(departs[n] for n in ins),
                             "growth": e / max(in_err, floor)})
    return pd.DataFrame(rows)


def _label(row: pd.Series) -> str:
    return f"ONNX {row['op_type']} {row['node']}"


def summarise(table: pd.DataFrame) -> dict[str, Any]:
    """The root node over the witnesses, each image's root and onset, the nodes of largest growth, and the
    median error per node along the model (module doc)."""
    if table.empty:
        return {"root": None, "root_node": None, "root_op_type": None, "root_images": 0, "per_image": [],
                "top_growth": [], "along": []}
    per_image = []
    for image, rows in table.groupby("image", sort=False):
        root = rows[rows["departs"] & ~rows["inputs_depart"]].head(1)
        onset = rows[rows["departs"]].head(1)
        per_image.append({"image": image,
                          "root_node": None if root.empty else root.iloc[0]["node"],
                          "root_order": None if root.empty else int(root.iloc[0]["order"]),
                          "onset_node": None if onset.empty else onset.iloc[0]["node"],
                          "departing_nodes": int(rows["departs"].sum())})
    rooted = pd.DataFrame([e for e in per_image if e["root_node"] is not None])
    out: dict[str, Any] = {"root": None, "root_node": None, "root_op_type": None, "root_images": 0}
    if not rooted.empty:
        counts = rooted.groupby(["root_order", "root_node"]).size().reset_index(name="n")
        best = counts.sort_values(["n", "root_order"], ascending=[False, True]).iloc[0]
        row = table[(table["order"] == best["root_order"])].iloc[0]
        out.update(root=_label(row), root_node=row["node"], root_op_type=row["op_type"], root_images=int(best["n"]))
    by_node = (table.groupby(["order", "tensor"], sort=True)
               .agg(node=("node", "first"), op_type=("op_type", "first"), err_rel=("err_rel", "median"),
                    floor_rel=("floor_rel", "median"), growth=("growth", "median"),
                    departs_on=("departs", "sum")).reset_index())
    top = by_node[by_node["departs_on"] > 0].sort_values(["growth", "order"], ascending=[False, True]).head(TOP)
    return {**out, "per_image": per_image,
            "top_growth": [{"node": r["node"], "op_type": r["op_type"], "growth": float(r["growth"]),
                            "departs_on": int(r["departs_on"])} for _, r in top.iterrows()],
            "along": by_node.replace({np.inf: None, np.nan: None}).to_dict("records")}


def named_mode(model, values: list[dict[str, np.ndarray]], reference: list[dict[str, np.ndarray]],
               noise: list[dict[str, np.ndarray]] | None, ids: list[str], verdict: dict[str, Any],
               tolerance: float) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The node table of a marked build's tensors (`values`, from run_marked) against the `reference`'s on the
    witnesses `ids` (floors from `noise`'s tensors where given), and its record; `verdict` is the finding's
    predicate judged on the marked build's own logits: where it no longer holds, the marking made the
    disagreement vanish."""
    table = node_table(model, values, reference, noise, ids, tolerance)
    return table, {**summarise(table), "tensors": len(values[0]) if values else 0, "marked_holds": verdict,
                   "vanished": not verdict["holds"]}


def marked_logits(model, values: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The model's declared (first) output on each image, from a marked build's tensors."""
    first = model.graph.output[0].name
    return np.stack([v[first].reshape(-1) for v in values])


def for_mutant(onnx_path: str, inputs: str, predicate: dict, rebuild: dict, tolerance: float,
               nodes_out: str) -> dict:
    """Named mode for a graph- or model-level mutant: the original and the mutant rebuilt from the marked ONNX
    file under the probe's configuration, every node's output read on the witnesses (the original's own rerun
    gives the floors)."""
    import tempfile

    import onnx

    from deltamut.localise.witness import confirmed, witness_images

    images = predicate["images"]
    x = witness_images(inputs, images)
    model = onnx.load(onnx_path)
    with tempfile.TemporaryDirectory(prefix="named-") as work:
        built = {side: build_marked(model, rebuild["optimisation"], rebuild["target"], work,
                                    rebuild["mutation"] if side == "mutant" else None, side)
                 for side in ("original", "mutant")}
        ref, rerun, values = (run_marked(built[side]["lib"], built[side]["names"], x)
                              for side in ("original", "original", "mutant"))
    a, b = marked_logits(model, values), marked_logits(model, ref)
    verdict = confirmed(predicate, {i: {"a": a[j], "b": b[j]} for j, i in enumerate(images)}, tolerance)
    table, record = named_mode(model, values, ref, rerun, images, verdict, tolerance)
    table.to_parquet(nodes_out, index=False)
    return {**record, "sites": built["mutant"]["sites"]}


def for_culprits(onnx_path: str, inputs: str, predicate: dict, faulty: dict, control: dict, target: dict,
                 tolerance: float, nodes_out: str) -> dict:
    """Named mode under the culprit steps: the marked model built with only them on, every node's output read
    against ONNX Runtime's on the witnesses; the floors come from the control build (every step off) against
    ONNX Runtime, the float32 noise every build shows."""
    import tempfile

    import onnx

    from deltamut.localise.splice import tensor_values
    from deltamut.localise.witness import against_reference, witness_images

    images = predicate["images"]
    x = witness_images(inputs, images)
    model = onnx.load(onnx_path)
    with tempfile.TemporaryDirectory(prefix="named-") as work:
        values, noise = (run_marked(b["lib"], b["names"], x) for b in (
            build_marked(model, spec, target, work, name=name) for name, spec in (("faulty", faulty),
                                                                                  ("control", control))))
    reference = tensor_values(model, [i[None] for i in x])
    table, record = named_mode(model, values, reference, noise, images,
                               against_reference(predicate)(marked_logits(model, values)), tolerance)
    table.to_parquet(nodes_out, index=False)
    return record
