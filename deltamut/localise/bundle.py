"""Reproducer bundles: the smallest run of ONNX nodes whose build still shows the finding inside the model.

A subgraph reproduces when its build, fed the real tensors ONNX Runtime computes at its boundary on each
witness image, and spliced into the rest of the model (ONNX Runtime runs the rest; deltamut.localise.splice),
still satisfies the finding's predicate on the model's labels, and a control build of the same subgraph does
not. That is the test compilers' own reducers lack: Polygraphy's `debug reduce` freezes branch tensors from one
sample; here every witness image brings its own boundary tensors, so a predicate over several images (k flips
of n) is judged on the subgraph as on the model.

The search is over windows of consecutive compute nodes in the file's topological order: the shortest prefix
that still reproduces (binary search on its end), then the shortest suffix of that prefix (binary search on
its start). Two binary searches cost about 2 log2(n) builds; the window they find is one where dropping the
first or last node loses the finding (binary search assumes that a window reproduces when a larger one
around the same fault does; the window returned is always checked, never inferred). A window the importer or
compiler cannot take is recorded with its error and counted as not reproducing, which can only make the
window larger, never wrong.

The bundle (`repro.py` says how it is read) is written in the ONNX backend-test layout, with the builds as
TVM modules, so a compiler engineer needs tvm, onnx, onnxruntime and numpy, not deltamut.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deltamut.fsutil import write_json
from deltamut.localise import repro, splice

FAULTY, CONTROL = "faulty", "control"


def transplant(mod, kernels: list[tuple[Any, Any]]) -> tuple[Any, list[str]]:
    """`mod` with every kernel structurally equal to one of `kernels`' originals replaced by its mutated twin,
    and the names of those replaced. A mutant's fault is in deltamut's mutated TIR, which no ONNX file holds;
    a window's build computes the same kernel (same shapes, same code, another name: `fused_conv2d_add_relu_add1`
    for the model's `fused_conv2d1_add1_relu_add2`) wherever the window holds the nodes fused into it."""
    import tvm_ffi
    from tvm import tirx

    out, moved = mod.clone(), []
    for gv, func in mod.functions_items():
        if isinstance(func, tirx.PrimFunc):
            twin = next((m for o, m in kernels if tvm_ffi.structural_equal(func, o)), None)
            if twin is not None:
                out.update_func(gv, twin)
                moved.append(gv.name_hint)
    return out, moved


def write_build(folder: Path, subgraph, shapes: dict[str, list[int]], spec: dict[str, Any],
                target_spec: dict[str, Any], kernels: list[tuple[Any, Any]] | None = None) -> None:
    """The subgraph through deltamut's stages for configuration `spec` (import, graph passes, lowering, the
    mutated `kernels` transplanted where given, schedules) up to what `tvm.compile` receives, stored with the
    target and PassContext to compile it under."""
    from tvm.relax.frontend.onnx import from_onnx

    from deltamut.compiler.build import schedule
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.passes import lower, optimise_graph
    from deltamut.compiler.serialize import save_module
    from deltamut.compiler.targets import make_target

    opt = OptConfig.from_dict("bundle", spec)
    mod = lower(optimise_graph(from_onnx(subgraph, shape_dict=shapes, keep_params_in_input=False), opt), opt)
    moved: list[str] = []
    if kernels:
        mod, moved = transplant(mod, kernels)
        if not moved:
            raise ValueError("no kernel of this window is one the mutant changed")
    target = make_target(target_spec, opt.llvm)
    with opt.pass_context():
        mod, _ = schedule(mod, target, target_spec, opt)
    folder.mkdir(parents=True, exist_ok=True)
    save_module(mod, folder / "module.json")
    (folder / "module.py").write_text(mod.script())
    write_json(folder / "build.json", {"target": str(target), "disabled_pass": list(opt.disabled_pass),
                                       "config": opt.tir, "configuration": spec, "transplanted": moved})


class Reducer:
    """Windows of one model judged against one predicate, each build kept under `workdir`."""

    def __init__(self, model, images: np.ndarray, predicate: dict[str, Any], builds: dict[str, dict[str, Any]],
                 target_spec: dict[str, Any], workdir: str | Path,
                 kernels: dict[str, list[tuple[Any, Any]]] | None = None):
        self.model, self.predicate, self.builds, self.target_spec = model, predicate, builds, target_spec
        self.kernels = kernels or {}  # per build: (original, mutated) kernels to transplant (transplant())
        self.workdir = Path(workdir)
        self.values = splice.tensor_values(model, [x[None] for x in images])
        self.n = len(splice.compute_nodes(model))
        self.trials: list[dict[str, Any]] = []

    def cases(self, c: splice.Cut) -> list[dict[str, dict[str, np.ndarray]]]:
        """Each witness's tensors at the cut, by role, as the bundle stores them."""
        return [{"input": {n: v[n] for n in c.inputs}, "output": {n: v[n] for n in c.outputs},
                 "context": {n: v[n] for n in c.context}} for v in self.values]

    def folder(self, first: int, last: int) -> Path:
        return self.workdir / f"{first}-{last}"

    def holds(self, first: int, last: int, which: str = FAULTY) -> bool:
        """Build window `first..last` as `which` and judge the predicate on the witnesses; recorded once."""
        c = splice.cut(self.model, first, last)
        trial: dict[str, Any] = {"window": [first, last], "build": which, "nodes": last - first + 1}
        try:
            subgraph, rest = splice.window_model(self.model, c), splice.rest_model(self.model, c)
            cases = self.cases(c)
            shapes = {n: list(a.shape) for n, a in cases[0]["input"].items()}
            write_build(self.folder(first, last) / which, subgraph, shapes, self.builds[which], self.target_spec,
                        self.kernels.get(which))
            run = repro.build(self.folder(first, last) / which)
            rest_session = repro.session(rest) if rest is not None else None
            top1 = [int(repro.logits(subgraph, rest_session, run, case).reshape(-1).argmax()) for case in cases]
            trial.update(repro.judge(top1, self.predicate))
        except Exception as exc:  # a window TVM cannot import or build: recorded, and it does not reproduce
            trial.update(holds=False, error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                         if str(exc).strip() else type(exc).__name__)
        self.trials.append(trial)
        return bool(trial["holds"])

    def reduce(self) -> dict[str, Any]:
        """The two binary searches of the module doc, then the control build of the window found."""
        out: dict[str, Any] = {"nodes_before": self.n}
        if not self.holds(0, self.n - 1):
            return {**out, "result": "not_reproduced", "trials": self.trials,
                    "reason": "the whole model, built as one window and judged on the witnesses, does not "
                              "satisfy the predicate"}
        lo, hi = -1, self.n - 1  # the prefix ending at lo does not reproduce (lo = -1: empty); at hi it does
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if self.holds(0, mid) else (mid, hi)
        last = hi
        lo, hi = 0, last + 1  # the window starting at lo reproduces; starting at hi (empty) it does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.holds(mid, last) else (lo, mid)
        first = lo
        control = self.holds(first, last, CONTROL)
        return {**out, "result": "control_reproduces" if control else "found", "window": [first, last],
                "nodes_after": last - first + 1, "trials": self.trials}

    def write(self, window: list[int], root: str | Path, extra: dict[str, Any]) -> None:
        """The bundle of the window found (repro.py's layout)."""
        import onnx
        from onnx import numpy_helper

        first, last = window
        root = Path(root)
        c = splice.cut(self.model, first, last)
        onnx.save(splice.window_model(self.model, c), str(root / "model.onnx"))
        rest = splice.rest_model(self.model, c)
        if rest is not None:
            onnx.save(rest, str(root / "rest.onnx"))
        for i, case in enumerate(self.cases(c)):
            folder = root / f"test_data_set_{i}"
            folder.mkdir(parents=True, exist_ok=True)
            for role, tensors in case.items():
                for j, (name, value) in enumerate(tensors.items()):
                    (folder / f"{role}_{j}.pb").write_bytes(
                        numpy_helper.from_array(np.asarray(value), name).SerializeToString())
        for which in (FAULTY, CONTROL):
            shutil.copytree(self.folder(first, last) / which, root / which, dirs_exist_ok=True)
        graph = self.model.graph
        write_json(root / "predicate.json", {
            **{k: self.predicate[k] for k in ("images", "k", "reference_top1")}, "kind": "flips",
            "ops": [graph.node[i].op_type for i in c.nodes], "onnx_nodes": [graph.node[i].name for i in c.nodes],
            "nodes": {"model": self.n, "subgraph": last - first + 1}, **extra})
        shutil.copyfile(repro.__file__, root / "repro.py")


def make_bundle(model, images: np.ndarray, predicate: dict[str, Any], builds: dict[str, dict[str, Any]],
                target_spec: dict[str, Any], out: str | Path, extra: dict[str, Any],
                log: Callable[[str], None] = print,
                kernels: dict[str, list[tuple[Any, Any]]] | None = None) -> dict[str, Any]:
    """Reduce and, when a window reproduces and its control does not, write the bundle into `out`; the
    search's record either way. The trial builds are removed (the bundle keeps the two it ships). `kernels`:
    per build, mutated kernels to transplant into the window's own (a mutant's bundle)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trials_dir = out.parent / f".{out.name}.trials"
    shutil.rmtree(trials_dir, ignore_errors=True)
    try:
        reducer = Reducer(model, images, predicate, builds, target_spec, trials_dir, kernels)
        result = reducer.reduce()
        log(f"bundle search: {result['result']} after {len(result['trials'])} builds")
        if result["result"] == "found":
            reducer.write(result["window"], out, extra)
            result["path"] = str(out)
        return result
    finally:
        shutil.rmtree(trials_dir, ignore_errors=True)


def for_mutant(onnx_path: str, inputs: str, predicate: dict[str, Any], rebuild: dict[str, Any],
               original_module: str, mutant_module: str, kernels: list[str], out: str) -> dict[str, Any]:
    """A kernel-level mutant's reproducer: windows built under the probe's configuration, the mutant's changed
    `kernels` (from its lowered module) transplanted over their originals (the faulty build) or not (the
    control); the predicate is the mutant pair's own (top-1 differs from the original's on k witnesses)."""
    import onnx

    from deltamut.compiler.serialize import load_module
    from deltamut.localise.witness import witness_images

    original, mutant = load_module(original_module), load_module(mutant_module)
    pairs = [(original[name], mutant[name]) for name in kernels]
    spec = rebuild["optimisation"]
    found = make_bundle(onnx.load(onnx_path), witness_images(inputs, predicate["images"]), predicate,
                        {FAULTY: spec, CONTROL: spec}, rebuild["target"], out, {"kernels": kernels},
                        kernels={FAULTY: pairs})
    keep = ("result", "path", "nodes_before", "nodes_after", "window", "reason")
    return {**{k: found[k] for k in keep if k in found}, "builds": len(found["trials"]), "kernels": kernels}
