"""Per-layer CPU time of a TVM build against ONNX Runtime's own profiler (issue #17 point 3: where TVM loses).

The whole-model ratio (`bench/cpu_latency.py`) says how far behind a build is, not where. Here every
convolution of the model gets two times, matched by position: the k-th Conv of the ONNX graph, the k-th TVM
kernel whose name holds `conv2d` in the build's call order (each with the epilogue fused into it: bias, clip,
residual add), and the k-th convolution node ONNX Runtime ran (Conv, FusedConv, its NCHWc Conv) in its
profiler's trace. Both orders are the graph's topological order; the script checks that the three counts
agree and refuses a per-layer table where they do not.

- TVM: inside the VM's instrument (`deltamut.localise.kernels.TracedBuild`), after each kernel has run, its own
  function is called again on the very arguments of that call, `--number` times back to back; the median per
  call is kept. Kernels other than convolutions (pooling, the classifier, layout copies) are listed by name.
- ONNX Runtime: `SessionOptions.enable_profiling`, `--runs` runs after a warm-up, the median per node of its
  `_kernel_time` events.

Each layer's kind comes from the ONNX graph (pointwise 1x1, depthwise, full), so the table's totals by kind
say which schedules to work on. Both sides use `--threads` threads. Usage:

    .venv/bin/python bench/kernel_times.py --model efficientnet_lite0 --config extended --out kernels.csv
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd


def onnx_convs(onnx_path: Path) -> list[dict]:
    """The ONNX graph's Conv nodes in order, with their kind and shape."""
    import onnx

    model = onnx.load(str(onnx_path))
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        w = weights.get(node.input[1], [])
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        kind = "depthwise" if group > 1 and len(w) == 4 and w[1] == 1 else \
            "pointwise" if len(w) == 4 and w[2:] == [1, 1] else "full"
        out.append({"layer": node.name, "kind": kind, "weight": "x".join(map(str, w))})
    return out


def tvm_kernels(lib: Path, x: np.ndarray, number: int) -> tuple[list[dict], float]:
    """Every kernel call of the build, in order: `tvm_ms`, its median over `number` calls repeated on that call's
    own arguments (hot caches, the pool awake), and `tvm_in_run_ms`, its median time where it stands in `number`
    whole runs (from the instrument's call before it to the one after: cold inputs, the pool's wake-up, and the
    instrument's own cost of a few microseconds). Also the median whole run without the instrument, in ms."""
    from deltamut.localise.kernels import TracedBuild

    build = TracedBuild(lib)
    build.run(x)  # warm-up: lazy initialisation, caches
    in_run: dict[int, list[float]] = defaultdict(list)
    clock = {"start": 0.0, "k": 0}

    def before(_name):
        clock["start"] = time.perf_counter()

    def stamp(_name, _args):
        in_run[clock["k"]].append(time.perf_counter() - clock["start"])
        clock["k"] += 1

    for _ in range(number):
        clock["k"] = 0
        build.run(x, stamp, before)
    rows: list[dict] = []

    def hook(name, args):
        fn = build.kernel(name)
        rows.append({"kernel": name, "tvm_ms": _median_ms(lambda: fn(*args), number, warmup=0),
                     "tvm_in_run_ms": 1e3 * float(np.median(in_run[len(rows)]))})

    build.run(x, hook)
    return rows, _median_ms(_plain_vm(lib, x), number)


def _plain_vm(lib: Path, x: np.ndarray):
    """The build's `main` in a VM without the instrument (every instruction would call into Python)."""
    import tvm
    from tvm.runtime.vm import VirtualMachine

    fn, data = VirtualMachine(tvm.runtime.load_module(str(lib)), tvm.cpu())["main"], tvm.runtime.tensor(x)
    return lambda: fn(data)


def _median_ms(fn, number: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(number):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def ort_nodes(onnx_path: Path, x: np.ndarray, runs: int, threads: int, tmp: Path) -> tuple[list[dict], float]:
    """ONNX Runtime's per-node kernel times (median over `runs`), in execution order, and its median whole run
    in a session without the profiler, in ms."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    plain = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    feed = {plain.get_inputs()[0].name: x}
    whole = _median_ms(lambda: plain.run(None, feed), runs)
    opts.enable_profiling = True
    opts.profile_file_prefix = str(tmp / "ort")
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    for _ in range(5):
        sess.run(None, feed)
    for _ in range(runs):
        sess.run(None, feed)
    events = json.loads(Path(sess.end_profiling()).read_text())
    order: list[str] = []
    times: dict[str, list[float]] = {}
    op: dict[str, str] = {}
    for ev in events:
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith("_kernel_time"):
            continue
        name = ev["name"][: -len("_kernel_time")]
        if name not in times:
            order.append(name)
            times[name] = []
        times[name].append(ev["dur"] / 1e3)
        op[name] = ev.get("args", {}).get("op_name", "")
    # the warm-up runs are in the trace too: keep each node's last `runs` times
    return [{"node": n, "op": op[n], "ort_ms": float(np.median(times[n][-runs:]))} for n in order], whole


def table(convs: list[dict], kernels: list[dict], nodes: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-layer table (convolutions matched by position) and the rest of each side's time."""
    tvm_convs = [k for k in kernels if "conv2d" in k["kernel"]]
    ort_convs = [n for n in nodes if "Conv" in n["op"]]
    if not len(convs) == len(tvm_convs) == len(ort_convs):
        raise SystemExit(f"convolutions do not line up: ONNX {len(convs)}, TVM kernels {len(tvm_convs)}, "
                         f"ONNX Runtime nodes {len(ort_convs)}")
    layers = pd.DataFrame([{**c, "tvm_kernel": k["kernel"], "tvm_ms": k["tvm_ms"],
                            "tvm_in_run_ms": k["tvm_in_run_ms"], "ort_node": n["node"],
                            "ort_op": n["op"], "ort_ms": n["ort_ms"]}
                           for c, k, n in zip(convs, tvm_convs, ort_convs, strict=True)])
    layers["ratio"] = layers.tvm_ms / layers.ort_ms
    rest = pd.DataFrame(
        [{"side": "tvm", "what": k["kernel"], "ms": k["tvm_ms"], "in_run_ms": k["tvm_in_run_ms"]}
         for k in kernels if "conv2d" not in k["kernel"]]
        + [{"side": "onnxruntime", "what": f"{n['op']} {n['node']}", "ms": n["ort_ms"]}
           for n in nodes if "Conv" not in n["op"]])
    return layers, rest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--config", default="extended", help="the pipeline optimisation to build")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--number", type=int, default=50, help="repeated calls per TVM kernel")
    ap.add_argument("--runs", type=int, default=50, help="profiled ONNX Runtime runs")
    ap.add_argument("--out", type=Path, default=Path("kernels.csv"))
    args = ap.parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))

    import torch
    from cpu_latency import _build_pipeline

    from deltamut.models import load_model

    info = load_model(args.model, {"source": "zoo"})
    x = np.random.default_rng(0).standard_normal(info.input_shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        onnx_path = tmp / "model.onnx"
        torch.onnx.export(info.module, (torch.from_numpy(x),), str(onnx_path), dynamo=True, external_data=False,
                          opset_version=18, input_names=["input"])
        lib, _ = _build_pipeline(onnx_path, args.config, tmp)
        kernels, tvm_whole = tvm_kernels(lib, x, args.number)
        nodes, ort_whole = ort_nodes(onnx_path, x, args.runs, args.threads, tmp)
        layers, rest = table(onnx_convs(onnx_path), kernels, nodes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    layers.to_csv(args.out, index=False)
    rest.to_csv(args.out.with_suffix(".rest.csv"), index=False)
    by_kind = layers.groupby("kind")[["tvm_ms", "tvm_in_run_ms", "ort_ms"]].sum()
    tvm_rest, ort_rest = rest[rest.side == "tvm"], rest[rest.side == "onnxruntime"]
    by_kind.loc["other (not conv)"] = [tvm_rest.ms.sum(), tvm_rest.in_run_ms.sum(), ort_rest.ms.sum()]
    by_kind.loc["sum of kernels"] = by_kind.sum()
    by_kind.loc["whole run"] = [tvm_whole, tvm_whole, ort_whole]
    by_kind["ratio"] = by_kind.tvm_ms / by_kind.ort_ms
    by_kind["ratio_in_run"] = by_kind.tvm_in_run_ms / by_kind.ort_ms
    print(layers.to_string(index=False))
    print(by_kind.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
