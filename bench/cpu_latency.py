"""Per-image CPU latency (batch 1) of PyTorch eager, ONNX Runtime and TVM builds, measured in one run.

The machine is shared, so absolute times drift with the load; the runners are therefore timed in
interleaved rounds and the table reports ratios against ONNX Runtime from the same rounds.

Two protocols. `workers` (the default) is the pipeline's own: each runner in a worker process of its own,
warmed up until its calls settle, timed in rotated rounds of blocks with the first call of each dropped
(`deltamut.timing.rounds.time_group`), the ratio the median of the per-round ratios with its bootstrap
interval (`deltamut.compare.stats.compare_rounds`), so a timing job's ratios and this benchmark's measure the
same thing. `in-process` runs every runner in this one process, in blocks, a fixed warm-up: ONNX Runtime took
twice as long there as alone (its pool beside TVM's and PyTorch's), which is why it is no longer the default.

TVM configurations: the pipeline's optimisations by name (`basic`, `default`, `extended`, built by
`deltamut.compiler` as the deploy stage builds them), or this script's own `unscheduled`, `rule`,
`rule_fastmath`. Usage:

    .venv/bin/python bench/cpu_latency.py --models efficientnet_lite0,resnet50 --configs default,extended \
        --repeats 30 --out lat.csv
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

CONFIGS = ("unscheduled", "rule", "rule_fastmath")  # this script's own builds; any other name is the pipeline's


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="efficientnet_lite0,resnet50")
    ap.add_argument("--configs", default="default,extended",
                    help=f"TVM configurations: the pipeline's optimisation names, or {CONFIGS}")
    ap.add_argument("--protocol", choices=("workers", "in-process"), default="workers")
    ap.add_argument("--repeats", type=int, default=30, help="timed rounds")
    ap.add_argument("--warmup", type=int, default=5, help="in-process: warm-up calls (workers: until stable)")
    ap.add_argument("--slow-repeats", type=int, default=3, help="in-process: rounds for the unscheduled build")
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
    print(f"\n{'model':20s} {'runner':16s} {'median ms':>10s} {'x ORT':>7s} {'95% CI':>13s} {'compile s':>9s} "
          f"{'max|d|':>9s}")
    for r in rows:
        ci = f"[{r['ratio_ci_low']:.2f}, {r['ratio_ci_high']:.2f}]"
        print(
            f"{r['model']:20s} {r['runner']:16s} {r['median_ms']:10.2f} {r['ratio_vs_ort']:7.2f} {ci:>13s} "
            f"{r['compile_s']:9.1f} {r['max_abs_diff_vs_torch']:9.2e}"
        )
    print(f"written {args.out}")
    return 0


def _bench_model(name: str, args: argparse.Namespace) -> list[dict]:
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
        torch.onnx.export(info.module, (xt,), str(onnx_path), dynamo=True, external_data=False, opset_version=18,
                          input_names=["input"])
        lowered = None
        builds: dict[str, tuple[Path, float]] = {}
        for config in (c.strip() for c in args.configs.split(",")):
            if config in CONFIGS:
                lowered = lowered if lowered is not None else _lower(onnx_path, info.input_shape)
                builds[f"tvm_{config}"] = _build_tvm(lowered, config, args.threads, Path(tmp))
            else:
                builds[f"tvm_{config}"] = _build_pipeline(onnx_path, config, Path(tmp))
        times = _in_workers(name, onnx_path, builds, x, args, Path(tmp)) if args.protocol == "workers" else None
        # loaded here after the workers' rounds (nothing of this process competes with them); in-process, timed
        runners = _callables(onnx_path, info, xt, x, builds, args.threads)
        times = times or _in_process(dict(runners), args)
        outputs = {k: fn() for k, fn in runners.items()}  # checked against PyTorch: a fast build must be right
    rows = []
    for runner, t in times.items():
        diff = float(np.abs(outputs[runner].reshape(ref.shape) - ref).max())
        rows.append({"model": name, "runner": runner, "protocol": args.protocol, **t,
                     "compile_s": builds[runner][1] if runner in builds else 0.0,
                     "max_abs_diff_vs_torch": diff, "threads": args.threads})
        print(f"{name} {runner}: {t['median_ms']:.2f} ms ({t['ratio_vs_ort']:.2f}x ORT), max|d| {diff:.2e}")
    return rows


def _in_workers(name: str, onnx_path: Path, builds: dict[str, tuple[Path, float]], x: np.ndarray,
                args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, float]]:
    """The pipeline's protocol (module doc): one worker process per runner, rounds, ratios per round."""
    from deltamut.outcome import Status
    from deltamut.runner.stage import framework_backend, tvm_backend
    from deltamut.timing.records import compare_members
    from deltamut.timing.rounds import TimingSettings, time_group

    inputs = tmp / "inputs.npz"
    np.savez(inputs, x=x, ids=np.array(["random"]))
    backends = {"onnxruntime": framework_backend("onnxruntime", name, {}, onnx_path, args.threads),
                "pytorch": framework_backend("torch", name, {"source": "zoo", "arch": name}, "", args.threads),
                **{runner: tvm_backend(lib, {"kind": "llvm"}, {}) for runner, (lib, _) in builds.items()}}
    settings = TimingSettings.from_config({"rounds": args.repeats, "images": 1}, {}, args.threads)
    record = time_group(backends, inputs, settings, tmp / "timing.log")
    members = record["members"]
    failed = {k: m["error"] for k, m in members.items() if m["status"] != Status.OK.value}
    if failed:
        raise SystemExit(f"{name}: timing failed: {failed} (log: {tmp / 'timing.log'})")
    out = {}
    for runner, m in members.items():
        c, _ = compare_members(members["onnxruntime"], m)
        out[runner] = {"median_ms": c.median_b, "ratio_vs_ort": c.ratio, "ratio_ci_low": c.ci_low,
                       "ratio_ci_high": c.ci_high, "rounds": c.n_b,
                       "warmup_calls": m["warmup"].get("calls"), "calls_per_block": m["calls_per_block"]}
    return out


def _in_process(runners: dict[str, Callable[[], np.ndarray]], args: argparse.Namespace) -> dict[str, dict]:
    """Every runner in this process, in interleaved blocks (module doc)."""
    slow = {k: runners.pop(k) for k in list(runners) if k == "tvm_unscheduled"}
    times = _interleaved(runners, args.warmup, args.repeats)
    times.update(_interleaved(slow, 1, args.slow_repeats) if slow else {})
    return {k: {"median_ms": ms, "ratio_vs_ort": ms / times["onnxruntime"], "ratio_ci_low": np.nan,
                "ratio_ci_high": np.nan} for k, ms in times.items()}


def _callables(onnx_path: Path, info, xt, x: np.ndarray, builds: dict[str, tuple[Path, float]],
               threads: int) -> dict[str, Callable[[], np.ndarray]]:
    import onnxruntime as ort
    import torch
    import tvm
    from tvm import relax

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name

    def run_torch():
        with torch.no_grad():
            return info.module(xt).numpy()

    runners = {"onnxruntime": lambda: sess.run(None, {in_name: x})[0], "pytorch": run_torch}
    data = tvm.runtime.tensor(x)
    for runner, (lib, _) in builds.items():
        fn = relax.VirtualMachine(tvm.runtime.load_module(str(lib)), tvm.cpu())["main"]
        runners[runner] = (lambda fn=fn: fn(data).numpy())
    return runners


def _lower(onnx_path: Path, shape):
    import onnx
    import tvm.relax.frontend.onnx  # noqa: F401 - registers the importer
    from tvm import relax

    mod = relax.frontend.onnx.from_onnx(onnx.load(str(onnx_path)), shape_dict={"input": list(shape)},
                                        keep_params_in_input=False)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    return relax.get_pipeline("zero")(mod)


def _build_pipeline(onnx_path: Path, config: str, tmp: Path) -> tuple[Path, float]:
    """One of the pipeline's optimisations, built as its deploy stage builds it."""
    from deltamut.compiler.build import build_library
    from deltamut.compiler.importer import import_onnx
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.passes import lower, optimise_graph
    from deltamut.defaults import section_default

    known = section_default("optimisations")
    if config not in known:
        raise SystemExit(f"unknown config {config!r}; known: {', '.join([*known, *CONFIGS])}")
    start = time.perf_counter()
    opt = OptConfig.from_dict(config, known[config])
    lib = tmp / f"{config}.so"
    build_library(lower(optimise_graph(import_onnx(onnx_path), opt), opt), {"kind": "llvm"}, opt, lib)
    return lib, time.perf_counter() - start


def _build_tvm(lowered, config: str, threads: int, tmp: Path) -> tuple[Path, float]:
    """Compile and export one of this script's configurations."""
    import tvm

    from deltamut.compiler.cpu_schedule import cpu_target, schedule_cpu

    start = time.perf_counter()
    target = cpu_target(num_cores=threads, fast_math=config == "rule_fastmath")
    mod = lowered if config == "unscheduled" else schedule_cpu(lowered, target)
    exe = tvm.compile(mod, target)
    lib_path = tmp / f"{config}.so"
    exe.export_library(str(lib_path))
    return lib_path, time.perf_counter() - start


def _interleaved(runners: dict, warmup: int, repeats: int, block: int = 5) -> dict[str, float]:
    """Median ms per runner over interleaved blocks of calls, so load drifts hit all runners alike.

    Each runtime's worker threads spin for a while after a call; calling the runners strictly in turn
    would time each one against the previous one's spinning threads (TVM came out 7x slower that way on 2
    cores). Within a block the runner runs back to back, and the first call of every block is dropped.
    """
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in runners}
    while min(len(v) for v in samples.values()) < repeats:
        for key, fn in runners.items():
            for i in range(min(block, repeats - len(samples[key])) + 1):
                t0 = time.perf_counter()
                fn()
                if i:
                    samples[key].append((time.perf_counter() - t0) * 1e3)
    return {k: float(np.median(v)) for k, v in samples.items()}


if __name__ == "__main__":
    raise SystemExit(main())
