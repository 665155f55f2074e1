"""The latency oracle on a real model, per runner kind: A/A and planted-slowdown counts (issue #17 point 1).

For each runner (ONNX Runtime, PyTorch eager, a TVM build), one timing group (`deltamut.timing.rounds`, the
timing jobs' protocol and settings) of six workers of the same variant and three more whose every call carries
a planted 1.3x slowdown (it spins for 0.3x its own time after each call). The 15 A/A pairs of plain workers
must come out `same_speed` (`slower` or `faster` is false; `unknown`, a machine too busy to judge, is counted
apart); the 15 pairs of a slowed worker against a plain one must come out `slower`. Also printed: each
worker's median call time, whose spread across workers of one variant is what the verdicts must not mistake
for a difference, and how many blocks were retaken because others took the cores. Usage:

    .venv/bin/python bench/timing_oracle.py --model efficientnet_lite0 --runners onnxruntime,torch,tvm \\
        --out oracle.csv [--timing '{"pool_spin_count": null}'] [--neighbour]

`--neighbour` plants a neighbour for the whole run: a process that spins on one core for 50-300 ms at a time
and sleeps 50-500 ms between (seeded), the kind of load that lands on one variant's block and not the next.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

PLAIN, SLOWED = 6, 3


def _backend(runner: str, model: str, onnx_path: Path, lib: Path | None, threads: int | None) -> dict:
    from deltamut.runner.stage import framework_backend, tvm_backend

    if runner == "tvm":
        return tvm_backend(lib, {"kind": "llvm"}, {})
    spec = {"source": "zoo", "arch": model} if runner == "torch" else {}
    return framework_backend(runner, model, spec, onnx_path, threads)


def oracle(runner: str, backend: dict, inputs: Path, timing: dict, threads: int | None, log: Path) -> dict:
    """One group's A/A and planted counts, and its workers' median call times."""
    from deltamut.compare.verdicts import LatencyVerdict, grade_latency
    from deltamut.timing.records import compare_members
    from deltamut.timing.rounds import TimingSettings, time_group

    plain = [f"plain{i}" for i in range(PLAIN)]
    slowed = [f"slowed{i}" for i in range(SLOWED)]
    backends = {v: dict(backend) for v in plain} | {v: {**backend, "planted_slowdown": 1.3} for v in slowed}
    settings = TimingSettings.from_config(timing, {}, threads)
    members = time_group(backends, inputs, settings, log)["members"]
    bad = {v: m["error"] for v, m in members.items() if m["status"] != "ok"}
    if bad:
        raise SystemExit(f"{runner}: timing failed: {bad} (log {log})")

    def verdict(a: str, b: str) -> str:  # b against its baseline a
        lat, busy = compare_members(members[a], members[b])
        return LatencyVerdict.UNKNOWN.value if busy else grade_latency(lat)

    aa = [verdict(a, b) for a, b in itertools.combinations(plain, 2)]
    planted = [verdict(p, s) for s in slowed for p in plain[:5]]
    medians = [float(np.median([np.median(r) for r in members[v]["rounds"]])) for v in plain]
    claims = (LatencyVerdict.SLOWER.value, LatencyVerdict.FASTER.value)
    return {"runner": runner, "aa_false": sum(v in claims for v in aa), "aa_unknown": aa.count("unknown"),
            "aa_pairs": len(aa), "planted_slower": planted.count("slower"),
            "planted_unknown": planted.count("unknown"), "planted_pairs": len(planted),
            "retaken_blocks": sum(m["retaken"] for m in members.values()),
            "plain_median_ms_min": min(medians), "plain_median_ms_max": max(medians),
            "spin": settings.pool_spin_count, "gap_s": settings.gap_s, "rounds": settings.rounds}


_BURSTS = """
import random, sys, time
random.seed(int(sys.argv[1]))
while True:
    end = time.perf_counter() + random.uniform(0.05, 0.3)
    while time.perf_counter() < end:
        pass
    time.sleep(random.uniform(0.05, 0.5))
"""


@contextlib.contextmanager
def neighbour(on: bool, seed: int = 0):
    """A bursty neighbour process while the block runs (nothing if not `on`)."""
    proc = subprocess.Popen([sys.executable, "-c", _BURSTS, str(seed)]) if on else None
    try:
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet_lite0")
    ap.add_argument("--runners", default="onnxruntime,torch,tvm")
    ap.add_argument("--config", default="extended", help="the TVM build's optimisation (the pipeline's)")
    ap.add_argument("--timing", default="{}", help="`timing:` settings as JSON (default: the schema's)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="each worker's pool size")
    ap.add_argument("--out", type=Path, default=Path("timing_oracle.csv"))
    ap.add_argument("--neighbour", action="store_true", help="a neighbour spinning in bursts meanwhile")
    args = ap.parse_args(argv)

    import torch

    from deltamut.models import load_model

    info = load_model(args.model, {"source": "zoo"})
    x = np.random.default_rng(0).standard_normal(info.input_shape, dtype=np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        onnx_path, inputs = tmp / "model.onnx", tmp / "inputs.npz"
        torch.onnx.export(info.module, (torch.from_numpy(x),), str(onnx_path), dynamo=True, external_data=False,
                          opset_version=18, input_names=["input"])
        np.savez(inputs, x=x, ids=np.array(["random"]))
        lib = None
        if "tvm" in args.runners:
            from cpu_latency import _build_pipeline

            lib, _ = _build_pipeline(onnx_path, args.config, tmp)
        for runner in args.runners.split(","):
            backend = _backend(runner, args.model, onnx_path, lib, args.threads)
            with neighbour(args.neighbour):
                rows.append({**oracle(runner, backend, inputs, json.loads(args.timing), args.threads,
                                      tmp / f"{runner}.log"), "neighbour": args.neighbour})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
