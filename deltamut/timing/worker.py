"""The child that times one variant: `python -m deltamut.timing.worker JOB.json`.

It opens the backend, reports `ready`, then obeys one JSON command per stdin line and answers one JSON event
per stdout line, so the parent (`deltamut.timing.rounds`) decides who runs when and only one variant of a group
computes at a time:

- `{"cmd": "warmup"}`: call the backend on the first image until the last `stable_calls` calls agree within
  `stable_tolerance` of their median (lazy initialisation, caches and clocks have settled), at most
  `max_calls` calls or `max_s` seconds; answers `warm` with the calls made, whether they settled, and the
  settled call time.
- `{"cmd": "block", "image": i, "calls": c, "drop": d}`: c back-to-back calls on image i; answers `block` with
  each call's milliseconds, the first included (with `drop`, the parent drops it: it pays for the previous
  variant's threads still spinning), and `foreign`: the share of the cores that others took during the kept
  calls (`deltamut.timing.contention`; null where it cannot be read).
- `{"cmd": "stop"}` or end of input: close and exit.

`planted_slowdown` in the job (a factor f > 1) makes every call take f times as long by spinning after it:
the oracle's calibration, a slowdown whose size is known in advance, used by the tests and the benchmark.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from deltamut.timing import contention


def _emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def settled(times: list[float], calls: int, tolerance: float) -> bool:
    """Whether the last `calls` timings agree within `tolerance` of their median (max - min <= tol * median)."""
    if len(times) < calls:
        return False
    last = np.asarray(times[-calls:], dtype=np.float64)
    return bool(np.ptp(last) <= tolerance * np.median(last))


class _Timed:
    """The backend's call, timed, with the planted slowdown after it."""

    def __init__(self, backend, slowdown: float):
        self.backend, self.slowdown = backend, slowdown

    def __call__(self, image: np.ndarray) -> float:
        t0 = time.perf_counter()
        self.backend(image)
        elapsed = time.perf_counter() - t0
        if self.slowdown > 1.0:
            _spin(elapsed * (self.slowdown - 1.0))
            elapsed = time.perf_counter() - t0
        return elapsed * 1e3


def _warmup(call: _Timed, image: np.ndarray, job: dict) -> dict:
    times: list[float] = []
    start = time.monotonic()
    calls, tol = int(job["stable_calls"]), float(job["stable_tolerance"])
    while len(times) < int(job["max_calls"]) and time.monotonic() - start < float(job["max_s"]):
        times.append(call(image))
        if settled(times, calls, tol):
            break
    stable = settled(times, calls, tol)
    return {"event": "warm", "calls": len(times), "stable": stable, "times_ms": times,
            "call_ms": float(np.median(times[-calls:]))}


def _block(call: _Timed, image: np.ndarray, calls: int, drop: bool = True) -> dict:
    ms = [call(image)] if drop else []
    before = contention.snapshot()
    ms += [call(image) for _ in range(calls - len(ms))]
    return {"event": "block", "ms": ms, "foreign": contention.foreign_share(before, contention.snapshot())}


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    with np.load(job["inputs"]) as z:
        images = [np.ascontiguousarray(z["x"][i : i + 1]) for i in job["images"]]
    from deltamut.devices import BackendError, open_backend
    from deltamut.runner.worker import prepare_import

    prepare_import(job["backend"])
    try:
        backend = open_backend(job["backend"])
    except Exception as exc:
        traceback.print_exc()
        _emit({"event": "open_failed", "error": f"{type(exc).__name__}: {exc}"[:500],
               "transient": isinstance(exc, BackendError) and exc.transient})
        return 3
    call = _Timed(backend, float(job.get("planted_slowdown") or 1.0))
    _emit({"event": "ready", "info": backend.info()})
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "warmup":
                _emit(_warmup(call, images[0], job))
            elif cmd["cmd"] == "block":
                image = images[int(cmd["image"]) % len(images)]
                _emit(_block(call, image, int(cmd["calls"]), bool(cmd.get("drop", True))))
            else:
                break
        except Exception as exc:
            traceback.print_exc()
            _emit({"event": "error", "error": f"{type(exc).__name__}: {exc}"[:500]})
            break
    backend.close()
    return 0


if __name__ == "__main__":
    from deltamut.procutil import exit_now

    exit_now(main(sys.argv[1]))
