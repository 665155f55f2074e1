"""The child process that owns a backend: `python -m deltamut.runner.worker JOB.json START [--hold]`.

It speaks one JSON line per event on stdout (`ready`, one per image, `open_failed`) and writes each
image's logits to `<scratch>/<i>.npy`, so whatever it finished survives its own crash. A job may name the
`indices` to run (a rerun repeats only the images the main run attempted); the others are passed over.
With `--hold` it opens the backend, reports ready, and waits for one JSON line on stdin (`{"indices": ...}`)
before its first image.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from deltamut.outcome import Status


def _emit(event: dict) -> None:
    event["t"] = time.time()  # wall clock, so the parent can order events across its workers
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def prepare_import(spec: dict) -> None:
    """Import what a backend needs before opening it, and no more: a worker's start is paid per variant."""
    if spec.get("kind") == "tvm":
        from deltamut.isolation import import_tvm_without_torch

        if spec.get("target_kind", "llvm") == "llvm" and not (spec.get("rpc") or spec.get("tracker")):
            # Running a built CPU library needs only libtvm_runtime: not the 260 MB compiler, nor tvm.relax
            # (the CUDA runtime and the RPC paths keep the full import).
            os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")
        import_tvm_without_torch()


def main(job_path: str, start: int, hold: bool = False) -> int:
    job = json.loads(Path(job_path).read_text())
    scratch = Path(job["scratch"])
    with np.load(job["inputs"]) as z:
        x = z["x"]
    from deltamut.devices import BackendError, open_backend

    prepare_import(job["backend"])
    try:
        backend = open_backend(job["backend"])
    except Exception as exc:  # reported to the parent, which decides whether to retry
        traceback.print_exc()
        transient = isinstance(exc, BackendError) and exc.transient
        _emit({"event": "open_failed", "error": f"{type(exc).__name__}: {exc}", "transient": transient})
        return 3
    _emit({"event": "ready", "info": backend.info()})
    indices = job.get("indices")
    if hold:  # started ahead of its turn (see deltamut.runner.run): wait for the parent's go
        line = sys.stdin.readline()
        if not line:  # the parent went away or gave up on this worker
            backend.close()
            return 0
        indices = json.loads(line).get("indices", indices)
    warmup, repeats = int(job["warmup"]), int(job["repeats"])
    only = None if indices is None else set(indices)
    first = True
    for i in range(start, x.shape[0]):
        if only is not None and i not in only:
            continue
        image = np.ascontiguousarray(x[i : i + 1])
        _emit({"event": "start", "i": i})
        try:
            # Warm-up on the first image of each worker: the first call pays for lazy initialisation
            # (MutateNN's first image took 18 s against 0.03 s for the rest).
            for _ in range(warmup if first else 0):
                backend(image)
            first = False
            times, spread, logits = [], 0.0, None
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = np.asarray(backend(image), dtype=np.float32)
                times.append((time.perf_counter() - t0) * 1e3)
                # Repeats double as a determinism check: any difference between runs of the same input
                # is the backend's own noise, which later comparisons must not call a finding.
                if logits is None:
                    logits = out
                elif out.shape == logits.shape:
                    spread = max(spread, float(np.nanmax(np.abs(out - logits), initial=0.0)))
                else:
                    spread = float("inf")
        except Exception as exc:
            traceback.print_exc()
            _emit({"event": "image", "i": i, "status": Status.ERROR.value,
                   "error": f"{type(exc).__name__}: {exc}"[:500]})
            continue
        logits = np.asarray(logits, dtype=np.float32).reshape(1, -1)
        np.save(scratch / f"{i}.npy", logits[0])
        status = Status.OK.value if np.all(np.isfinite(logits)) else Status.NAN.value
        _emit({"event": "image", "i": i, "status": status, "latency_ms": times, "spread": spread,
               "error": "" if status == Status.OK else "non-finite values in the output"})
    backend.close()
    return 0


if __name__ == "__main__":
    from deltamut.procutil import exit_now

    exit_now(main(sys.argv[1], int(sys.argv[2]), hold="--hold" in sys.argv[3:]))
