"""The parent side: start a worker, watch it, and turn whatever happens into per-image results."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deltamut import provenance
from deltamut.outcome import Status
from deltamut.procutil import kill_group, spawn
from deltamut.runner.outputs import Outputs


@dataclass(frozen=True)
class RunSettings:
    """Time limits and timing protocol of the infer stage (the config's `runner:` section)."""

    warmup: int = 2
    repeats: int = 5
    open_timeout_s: float = 120.0
    image_timeout_s: float = 60.0
    max_restarts: int = 2
    retries: int = 2
    retry_backoff_s: float = 2.0
    threads: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RunSettings:
        d = d or {}
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class _Worker:
    """One worker process and a line reader on its stdout with deadlines."""

    def __init__(self, job_path: Path, start: int, log, threads: int | None):
        env = dict(os.environ)
        if threads:
            env["TVM_NUM_THREADS"] = str(threads)
            env["OMP_NUM_THREADS"] = str(threads)
        self.proc = spawn([sys.executable, "-m", "deltamut.runner.worker", str(job_path), str(start)],
                          stdout=subprocess.PIPE, stderr=log, env=env)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def next_event(self, timeout_s: float) -> dict | None:
        """The next JSON event, None on timeout; {'event': 'exit'} when the worker ended."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sel.select(left):
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                return {"event": "exit", "returncode": self.proc.wait()}
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except json.JSONDecodeError:  # a backend printed to stdout: not ours, skip it
            return self.next_event(max(deadline - time.monotonic(), 0.01))

    def kill(self) -> None:
        kill_group(self.proc)
        self.sel.close()
        self.proc.stdout.close()


def _describe_exit(returncode: int) -> tuple[Status, str]:
    if returncode < 0:
        sig = -returncode
        return Status.CRASH, f"worker killed by signal {sig} ({signal.Signals(sig).name})"
    return Status.CRASH, f"worker exited with code {returncode}"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _drain(worker: _Worker, start: int, n: int, settings: RunSettings, scratch: str, status, error,
           latency, spread, logits) -> tuple[int, str]:
    """Collect a worker's results until it ends; return where the next worker starts and how this one ended.

    The image in flight when the worker hangs or dies is the one that caused it: it is recorded as a
    timeout or crash and the next worker starts after it.
    """
    inflight: int | None = None
    while True:
        # The first image also carries the warm-up runs.
        budget = settings.image_timeout_s * (1 + (settings.warmup if inflight == start else 0))
        ev = worker.next_event(budget)
        if ev is None:
            worker.kill()
            if inflight is None:
                return n, "hung between images"
            status[inflight] = Status.TIMEOUT.value
            error[inflight] = f"no result within {budget:g} s"
            return inflight + 1, f"timeout on image {inflight}"
        if ev["event"] == "exit":
            worker.kill()
            if ev["returncode"] == 0 or inflight is None:
                return n, f"exit {ev['returncode']}"
            st, why = _describe_exit(ev["returncode"])
            status[inflight], error[inflight] = st.value, why
            return inflight + 1, f"{why} on image {inflight}"
        if ev["event"] == "start":
            inflight = ev["i"]
            continue
        i = ev["i"]
        inflight = None
        status[i], error[i] = ev["status"], ev.get("error", "")
        if ev.get("latency_ms"):
            latency[i, : len(ev["latency_ms"])] = ev["latency_ms"]
        spread[i] = ev.get("spread", np.nan)
        f = Path(scratch) / f"{i}.npy"
        if f.exists():
            logits[i] = np.load(f)


def run_dataset(backend: dict[str, Any], inputs: str | Path, settings: RunSettings,
                log_path: str | Path) -> Outputs:
    """Run every image of `inputs` (an npz with `x` and `ids`) through `backend` in child processes."""
    with np.load(inputs) as z:
        ids = z["ids"].astype(str)
    n = len(ids)
    status = np.full(n, Status.SKIPPED.value, dtype=object)
    error = np.full(n, "", dtype=object)
    latency = np.full((n, max(settings.repeats, 1)), np.nan)
    spread = np.full(n, np.nan)
    logits: dict[int, np.ndarray] = {}
    events: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="deltamut-run-") as scratch, open(log_path, "ab") as log:
        job = {"backend": backend, "inputs": str(inputs), "scratch": scratch,
               "warmup": settings.warmup, "repeats": settings.repeats}
        job_path = Path(scratch) / "job.json"
        job_path.write_text(json.dumps(job))
        start, restarts, open_attempts = 0, 0, 0
        while start < n:
            worker = _Worker(job_path, start, log, settings.threads)
            ev = worker.next_event(settings.open_timeout_s)
            if ev is None or ev["event"] != "ready":
                worker.kill()
                transient = bool(ev and ev.get("transient"))
                if ev is None:
                    why, st = f"backend did not open within {settings.open_timeout_s:g} s", Status.TIMEOUT
                elif ev["event"] == "exit":
                    st, why = _describe_exit(ev["returncode"])
                    why = f"while opening the backend: {why}"
                else:
                    st, why = Status.ERROR, ev["error"]
                open_attempts += 1
                events.append({"event": "open_failed", "attempt": open_attempts, "error": why,
                               "transient": transient})
                if transient and open_attempts <= settings.retries:
                    time.sleep(settings.retry_backoff_s * open_attempts)
                    continue
                status[start:], error[start:] = st.value, why
                break
            info = ev["info"]
            start, ended = _drain(worker, start, n, settings, scratch, status, error, latency, spread,
                                  logits)
            if start >= n:
                break
            events.append({"event": "restart", "after": ended})
            restarts += 1
            if restarts > settings.max_restarts:
                error[start:] = f"not run: the worker failed {restarts} times (max_restarts)"
                break
    width = max((v.shape[0] for v in logits.values()), default=0)
    table = np.full((n, width), np.nan, dtype=np.float32)
    for i, v in logits.items():
        table[i, : v.shape[0]] = v
    meta = {"backend": {k: v for k, v in backend.items() if k != "model_spec"}, "device_info": info,
            "settings": asdict(settings), "events": events, "versions": provenance.versions(),
            "host": provenance.host()}
    if events or any(s != Status.OK.value for s in status):
        meta["log_tail"] = _tail(log_path)
    return Outputs(ids=ids, logits=table, latency_ms=latency, status=status.astype(str),
                   error=error.astype(str), repeat_spread=spread, meta=meta)
