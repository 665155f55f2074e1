"""Per-image CPU latency (batch 1) of PyTorch eager, ONNX Runtime and TVM builds, measured in one run.

The machine is shared, so absolute times drift with the load; the runners are therefore timed in
interleaved rounds (one call of each per round) and the table reports ratios against ONNX Runtime from the
same rounds. Usage:

    .venv/bin/python bench/cpu_latency.py --models efficientnet_lite0,resnet50 --repeats 30 --out lat.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

CONFIGS = ("unscheduled", "rule", "rule_fastmath")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="efficientnet_lite0,resnet50")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"TVM configurations from {CONFIGS}")
    ap.add_argument("--repeats", type=int, default=30, help="timed rounds")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--slow-repeats", type=int, default=3, help="rounds for the unscheduled build")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=Path("cpu_latency.csv"))
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # TVM's runtime reads TVM_NUM_THREADS when it starts its pool; on x86 it defaults to half the cores
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    rows = []
    for name in args.models.split(","):
        rows += _bench_model(name.strip(), args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\n{'model':20s} {'runner':16s} {'median ms':>10s} {'x ORT':>7s} {'compile s':>9s} {'max|d|':>9s}")
    for r in rows:
        print(
            f"{r['model']:20s} {r['runner']:16s} {r['median_ms']:10.2f} {r['ratio_vs_ort']:7.2f} "
            f"{r['compile_s']:9.1f} {r['max_abs_diff_vs_torch']:9.2e}"
        )
    print(f"written {args.out}")
    return 0


def _bench_model(name: str, args: argparse.Namespace) -> list[dict]:
    import onnx
    import onnxruntime as ort
    import torch

    from deltamut.models import load_model

    torch.set_num_threads(args.threads)
    info = load_model(name, {"source": "zoo"})
    x = np.random.default_rng(0).standard_normal(info.input_shape, dtype=np.float32)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        ref = info.module(xt).numpy()

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / f"{name}.onnx"
        torch.onnx.export(info.module, (xt,), str(onnx_path), dynamo=True, external_data=False, opset_version=18)
        model = onnx.load(str(onnx_path))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        in_name = sess.get_inputs()[0].name

        def run_torch():
            with torch.no_grad():
                return info.module(xt).numpy()

        runners: dict[str, tuple[Callable[[], np.ndarray], float]] = {
            "onnxruntime": (lambda: sess.run(None, {in_name: x})[0], 0.0),
            "pytorch": (run_torch, 0.0),
        }
        lowered = _lower(model, in_name, info.input_shape)
        slow = {}
        for config in args.configs.split(","):
            fn, compile_s = _build_tvm(lowered, config.strip(), args.threads, Path(tmp), x)
            (slow if config.strip() == "unscheduled" else runners)[f"tvm_{config.strip()}"] = (fn, compile_s)

        times = _interleaved(runners, args.warmup, args.repeats)
        times.update(_interleaved(slow, 1, args.slow_repeats) if slow else {})
    all_runners = {**runners, **slow}
    ort_ms = times["onnxruntime"]
    rows = []
    for runner, (fn, compile_s) in all_runners.items():
        diff = float(np.abs(fn().reshape(ref.shape) - ref).max())
        rows.append(
            {
                "model": name,
                "runner": runner,
                "median_ms": times[runner],
                "ratio_vs_ort": times[runner] / ort_ms,
                "compile_s": compile_s,
                "max_abs_diff_vs_torch": diff,
                "threads": args.threads,
            }
        )
        print(f"{name} {runner}: {times[runner]:.2f} ms ({times[runner] / ort_ms:.2f}x ORT), max|d| {diff:.2e}")
    return rows


def _lower(model, in_name: str, shape):
    import tvm.relax.frontend.onnx  # noqa: F401 - registers the importer
    from tvm import relax

    mod = relax.frontend.onnx.from_onnx(model, shape_dict={in_name: list(shape)}, keep_params_in_input=False)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    return relax.get_pipeline("zero")(mod)


def _build_tvm(lowered, config: str, threads: int, tmp: Path, x: np.ndarray):
    """Compile, export and reload one configuration the way the deploy stage does."""
    import tvm
    from tvm import relax

    from deltamut.compiler.cpu_schedule import cpu_target, schedule_cpu

    if config not in CONFIGS:
        raise SystemExit(f"unknown config {config!r}; known: {CONFIGS}")
    start = time.perf_counter()
    target = cpu_target(num_cores=threads, fast_math=config == "rule_fastmath")
    mod = lowered if config == "unscheduled" else schedule_cpu(lowered, target)
    exe = tvm.compile(mod, target)
    lib_path = tmp / f"{config}.so"
    exe.export_library(str(lib_path))
    compile_s = time.perf_counter() - start
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(lib_path)), tvm.cpu())
    data = tvm.runtime.tensor(x)
    fn = vm["main"]
    return (lambda: fn(data).numpy()), compile_s


def _interleaved(runners: dict, warmup: int, repeats: int, block: int = 5) -> dict[str, float]:
    """Median ms per runner over interleaved blocks of calls, so load drifts hit all runners alike.

    Each runtime's worker threads spin for a while after a call; calling the runners strictly in turn
    would time each one against the previous one's spinning threads (TVM came out 7x slower that way on 2
    cores). Within a block the runner runs back to back, and the first call of every block is dropped.
    """
    for fn, _ in runners.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in runners}
    while min(len(v) for v in samples.values()) < repeats:
        for key, (fn, _) in runners.items():
            for i in range(min(block, repeats - len(samples[key])) + 1):
                t0 = time.perf_counter()
                fn()
                if i:
                    samples[key].append((time.perf_counter() - t0) * 1e3)
    return {k: float(np.median(v)) for k, v in samples.items()}


if __name__ == "__main__":
    raise SystemExit(main())
