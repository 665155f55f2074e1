#!/usr/bin/env python3
"""A deltamut reproducer bundle's own check: exits 1 while the bug is present, 0 when it is not.

Needs only tvm, onnx, onnxruntime and numpy (deltamut copies this file into every bundle as `repro.py` and uses
the same functions while it reduces the subgraph, so what it searched with is what ships). The bundle:

- `model.onnx`: the subgraph; `test_data_set_<i>/input_<j>.pb` its inputs on witness image i (the real tensors
  ONNX Runtime computed at the cut), `output_<j>.pb` its outputs from ONNX Runtime (the ONNX backend-test layout);
- `rest.onnx` (absent when the subgraph ends the model): the nodes after it, reading the subgraph's outputs and
  `context_<j>.pb`, the tensors from before the subgraph that bypass it;
- `faulty/` and `control/`: the subgraph's TVM module as `tvm.compile` receives it (`module.json`, weights
  embedded; `module.py` to read) and `build.json` (target, PassContext) for the build that shows the bug and
  for one that does not;
- `predicate.json`: the finding's predicate: top-1 after the rest differs from `reference_top1` on at least
  `k` of the witness images.

Usage: `python repro.py [--build faulty|control] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def read_data_set(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    """A data set's tensors by role (input, output, context), each by its stored name."""
    import onnx
    from onnx import numpy_helper

    out: dict[str, dict[str, np.ndarray]] = {"input": {}, "output": {}, "context": {}}
    for role in out:
        for pb in sorted(folder.glob(f"{role}_*.pb"), key=lambda p: int(p.stem.split("_")[1])):
            tensor = onnx.TensorProto.FromString(pb.read_bytes())
            out[role][tensor.name] = numpy_helper.to_array(tensor)
    return out


def data_sets(root: Path) -> list[dict[str, dict[str, np.ndarray]]]:
    return [read_data_set(d) for d in sorted(root.glob("test_data_set_*"), key=lambda p: int(p.name.split("_")[-1]))]


def build(folder: Path):
    """Compile a stored module under its stored target and PassContext; a function from the subgraph's inputs
    (in its graph's order) to its outputs."""
    import tvm
    from tvm.runtime.vm import VirtualMachine

    spec = json.loads((folder / "build.json").read_text())
    mod = tvm.ir.load_json((folder / "module.json").read_text())
    with tvm.transform.PassContext(opt_level=3, disabled_pass=spec.get("disabled_pass", []),
                                   config=spec.get("config", {})):
        exe = tvm.compile(mod, tvm.target.Target(json.loads(spec["target"])))
    vm = VirtualMachine(exe, tvm.cpu(0))

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        result = vm["main"](*[tvm.runtime.tensor(a) for a in arrays])
        items = list(result) if isinstance(result, (list, tuple)) or type(result).__name__ == "Array" else [result]
        return [r.numpy() for r in items]

    return run


def session(model):
    """ONNX Runtime on the CPU with its graph rewrites off."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def logits(subgraph, rest, candidate, case: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
    """The model's logits with the subgraph computed by `candidate` and everything after it by `rest`, an ONNX
    Runtime session of the rest of the model (None when the subgraph ends the model)."""
    names_in = [i.name for i in subgraph.graph.input if i.name in case["input"]]
    produced = dict(zip([o.name for o in subgraph.graph.output], candidate([case["input"][n] for n in names_in]),
                        strict=True))
    if rest is None:
        return next(iter(produced.values()))
    feeds = {**case["context"], **produced}
    return rest.run([rest.get_outputs()[0].name], {i.name: feeds[i.name] for i in rest.get_inputs()})[0]


def judge(top1: list[int], predicate: dict) -> dict:
    """The predicate on the top-1 labels of the witness images."""
    flipped = [img for img, got, want in zip(predicate["images"], top1, predicate["reference_top1"], strict=True)
               if got != want]
    return {"holds": len(flipped) >= int(predicate["k"]), "flipped": flipped, "k": int(predicate["k"]),
            "top1": top1}


def check(root: Path, which: str) -> dict:
    import onnx

    predicate = json.loads((root / "predicate.json").read_text())
    subgraph = onnx.load(str(root / "model.onnx"))
    rest = session(onnx.load(str(root / "rest.onnx"))) if (root / "rest.onnx").is_file() else None
    candidate = build(root / which)
    top1 = [int(logits(subgraph, rest, candidate, case).reshape(-1).argmax()) for case in data_sets(root)]
    return {"build": which, **judge(top1, predicate)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", choices=("faulty", "control"), default="faulty")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    args = parser.parse_args(argv)
    verdict = check(HERE, args.build)
    if args.json:
        print(json.dumps(verdict))
    else:
        state = "present" if verdict["holds"] else "absent"
        print(f"{args.build} build: top-1 differs on {len(verdict['flipped'])} of {len(verdict['top1'])} witness "
              f"images (k={verdict['k']}): the bug is {state}")
    return 1 if verdict["holds"] else 0


if __name__ == "__main__":
    sys.exit(main())
