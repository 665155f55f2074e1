"""The parent side: start a worker, watch it, and turn whatever happens into per-image results.

A variant's dataset is run once with the full timing protocol, then `reruns - 1` more times in fresh
workers: nondeterminism that one process cannot show (a new library load, another thread-pool start,
uninitialised memory) shows up as a difference between those runs, before compare could call it a finding.

The rerun workers of a local backend start together with the main one and wait, backend open, until their
turn: their imports and model load (torch alone costs 1.3-1.9 s) overlap the main worker's instead of
following its run, and none of it overlaps a timed call, since the main worker starts timing only once every
rerun worker has reported ready. Each rerun is still a process of its own, started fresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from deltamut import provenance
from deltamut.defaults import schema_field
from deltamut.numeric import max_abs_diff
from deltamut.outcome import Status
from deltamut.procutil import EventPipe, spawn
from deltamut.runner.outputs import Outputs


@dataclass(frozen=True)
class RunSettings:
    """Time limits and timing protocol of the infer stage (the config's `runner:` section, defaults and all)."""

    warmup: int = schema_field("runner", "warmup")
    repeats: int = schema_field("runner", "repeats")
    open_timeout_s: float = schema_field("runner", "open_timeout_s")
    image_timeout_s: float = schema_field("runner", "image_timeout_s")
    max_restarts: int = schema_field("runner", "max_restarts")
    retries: int = schema_field("runner", "retries")
    retry_backoff_s: float = schema_field("runner", "retry_backoff_s")
    threads: int | None = schema_field("runner", "threads")
    # How many times the dataset runs in all, each in fresh worker processes (1: no rerun). Reruns call each
    # image once with no warm-up: they only check the outputs and never touch the recorded latencies.
    reruns: int = schema_field("runner", "reruns")

    def __post_init__(self) -> None:
        if int(self.reruns) < 1:
            raise ValueError(f"runner.reruns must be >= 1 (1 = no rerun), got {self.reruns}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RunSettings:
        d = d or {}
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


_OPEN_TIMED_OUT: dict = {"event": "timeout"}


def worker_env(threads: int | None) -> dict[str, str]:
    """A worker's environment: TVM's and OpenMP's pools read their size when they start, not per call."""
    env = dict(os.environ)
    if threads:
        env["TVM_NUM_THREADS"] = str(threads)
        env["OMP_NUM_THREADS"] = str(threads)
    return env


class _Worker:
    """One worker process and a line reader on its stdout with deadlines.

    A held worker (`hold=True`) opens its backend, reports ready and waits for `go()` before its first image.
    """

    def __init__(self, job_path: Path, start: int, log, threads: int | None, hold: bool = False):
        env = worker_env(threads)
        args = [sys.executable, "-m", "deltamut.runner.worker", str(job_path), str(start)]
        self.held = hold
        self.proc = spawn(args + (["--hold"] if hold else []), stdout=subprocess.PIPE, stderr=log, env=env,
                          stdin=subprocess.PIPE if hold else subprocess.DEVNULL)
        self.pipe = EventPipe(self.proc)
        self.peeked: dict | None = None  # the open event, when the parent read it while waiting for all

    def go(self, indices: list[int] | None) -> None:
        """Let a held worker start, on `indices` (None: the job's own)."""
        if not self.held:
            return
        self.held = False
        self.pipe.send({"indices": indices})  # a worker that died while waiting: its exit event says how
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def next_event(self, timeout_s: float) -> dict | None:
        """The next JSON event, None on timeout; {'event': 'exit'} when the worker ended."""
        if self.peeked is not None:
            ev, self.peeked = self.peeked, None
            return None if ev is _OPEN_TIMED_OUT else ev
        return self.pipe.next_event(timeout_s)

    def kill(self) -> None:
        self.held = False
        self.pipe.kill()


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


def _drain(worker: _Worker, start: int, n: int, settings: RunSettings, scratch: Path, run: _Pass) -> tuple[int, str]:
    """Collect a worker's results until it ends; return where the next worker starts and how this one ended.

    The image in flight when the worker hangs or dies is the one that caused it: it is recorded as a
    timeout or crash and the next worker starts after it.
    """
    inflight: int | None = None
    first: int | None = None  # the worker's first image, which also carries the warm-up runs
    while True:
        budget = settings.image_timeout_s * (1 + (settings.warmup if inflight is not None and inflight == first
                                                  else 0))
        ev = worker.next_event(budget)
        if ev is None:
            worker.kill()
            if inflight is None:
                return n, "hung between images"
            run.status[inflight] = Status.TIMEOUT.value
            run.error[inflight] = f"no result within {budget:g} s"
            return inflight + 1, f"timeout on image {inflight}"
        if ev["event"] == "exit":
            worker.kill()
            if ev["returncode"] == 0 or inflight is None:
                return n, f"exit {ev['returncode']}"
            st, why = _describe_exit(ev["returncode"])
            run.status[inflight], run.error[inflight] = st.value, why
            return inflight + 1, f"{why} on image {inflight}"
        if ev["event"] == "start":
            inflight = ev["i"]
            first = inflight if first is None else first
            run.attempted[inflight] = True
            run.timeline["first_image"] = run.timeline["first_image"] or ev.get("t")
            continue
        run.timeline["last_image"] = ev.get("t")
        i = ev["i"]
        inflight = None
        run.status[i], run.error[i] = ev["status"], ev.get("error", "")
        if ev.get("latency_ms"):
            run.latency[i, : len(ev["latency_ms"])] = ev["latency_ms"]
        run.spread[i] = ev.get("spread", np.nan)
        f = scratch / f"{i}.npy"
        if f.exists():
            run.logits[i] = np.load(f)


@dataclass
class _Pass:
    """What one run over the dataset produced: the main run or one rerun."""

    status: np.ndarray
    error: np.ndarray
    latency: np.ndarray
    spread: np.ndarray
    attempted: np.ndarray  # (N,) bool: a worker started the image (it ran, crashed or hung)
    logits: dict[int, np.ndarray] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    # wall-clock times (worker stamps): each worker's ready, the first image's start, the last image's end
    timeline: dict[str, Any] = field(default_factory=lambda: {"ready": [], "first_image": None, "last_image": None})

    @classmethod
    def empty(cls, n: int, repeats: int) -> _Pass:
        return cls(status=np.full(n, Status.SKIPPED.value, dtype=object), error=np.full(n, "", dtype=object),
                   latency=np.full((n, max(repeats, 1)), np.nan), spread=np.full(n, np.nan),
                   attempted=np.zeros(n, dtype=bool))


def _remote(backend: dict[str, Any]) -> bool:
    return bool(backend.get("rpc") or backend.get("tracker"))


def _write_job(backend: dict[str, Any], inputs: str | Path, settings: RunSettings, scratch: Path,
               indices: list[int] | None) -> Path:
    scratch.mkdir(parents=True, exist_ok=True)
    job = {"backend": backend, "inputs": str(inputs), "scratch": str(scratch), "warmup": settings.warmup,
           "repeats": settings.repeats, "indices": indices}
    job_path = scratch / "job.json"
    job_path.write_text(json.dumps(job))
    return job_path


def _run_pass(backend: dict[str, Any], inputs: str | Path, n: int, settings: RunSettings, log, scratch: Path,
              indices: list[int] | None = None, first: _Worker | None = None) -> _Pass:
    """Run the images (all, or `indices`) through workers, restarting after a crash or a hang. `first`: a
    worker started ahead (held until now) to use before starting any."""
    run = _Pass.empty(n, settings.repeats)
    job_path = _write_job(backend, inputs, settings, scratch, indices)
    start, restarts, open_attempts = 0, 0, 0
    # A worker is started only when an image is left for it: a rerun of a few images loads the backend once.
    while (start := _next_image(start, indices, n)) < n:
        worker, first = first or _Worker(job_path, start, log, settings.threads), None
        ev = worker.next_event(settings.open_timeout_s)
        if ev is None or ev["event"] != "ready":
            worker.kill()
            # A remote board whose session hangs while opening (seen with the emulated board: it accepted the
            # connection and then never answered) is the board's state, not the library's: retried like an
            # unreachable one. A local backend that hangs while loading the library would hang again.
            transient = bool(ev and ev.get("transient")) or (ev is None and _remote(backend))
            if ev is None:
                why, st = f"backend did not open within {settings.open_timeout_s:g} s", Status.TIMEOUT
            elif ev["event"] == "exit":
                st, why = _describe_exit(ev["returncode"])
                why = f"while opening the backend: {why}"
            else:
                st, why = Status.ERROR, ev["error"]
            open_attempts += 1
            run.events.append({"event": "open_failed", "attempt": open_attempts, "error": why,
                               "transient": transient})
            if transient and open_attempts <= settings.retries:
                time.sleep(settings.retry_backoff_s * open_attempts)
                continue
            run.status[start:], run.error[start:] = st.value, why
            break
        run.info = ev["info"]
        run.timeline["ready"].append(ev.get("t"))
        worker.go(indices)
        start, ended = _drain(worker, start, n, settings, scratch, run)
        if start >= n:
            break
        run.events.append({"event": "restart", "after": ended})
        restarts += 1
        if restarts > settings.max_restarts:
            run.error[start:] = f"not run: the worker failed {restarts} times (max_restarts)"
            break
    return run


def _start_held(backend: dict[str, Any], inputs: str | Path, settings: RunSettings, check: RunSettings, log,
                scratch: Path) -> list[_Worker | None]:
    """The first worker of the main run and of every rerun, started together and held; returns once all
    have opened their backend (or failed to), so nothing is still loading when the main run starts timing.

    Remote backends get no early workers: a board's RPC server serves one session at a time, so a held
    rerun session would wait on the main one and the main one on it.
    """
    if settings.reruns < 2 or _remote(backend):
        return [None] * settings.reruns
    workers = []
    for k in range(settings.reruns):
        job = _write_job(backend, inputs, settings if k == 0 else check, scratch / f"run{k}", None)
        workers.append(_Worker(job, 0, log, settings.threads, hold=True))
    deadline = time.monotonic() + settings.open_timeout_s
    for w in workers:
        # no event by the deadline: _run_pass then records an open timeout, as for any worker
        w.peeked = w.next_event(max(deadline - time.monotonic(), 0.0)) or _OPEN_TIMED_OUT
    return workers


def _next_image(start: int, indices: list[int] | None, n: int) -> int:
    if indices is None:
        return start
    return next((i for i in indices if i >= start), n)


def _rerun_spread(main: _Pass, reruns: list[_Pass], ids: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                            list[dict[str, Any]]]:
    """Per image, the largest logit difference between the main run and any rerun where both returned logits;
    each rerun's status ("" where not rerun); and the runs that ended differently. A run that crashed in one
    process and not in another is a status disagreement, recorded as such: its spread stays undefined (NaN),
    never an infinite tolerance that would excuse any difference."""
    spread = np.full(len(ids), np.nan)
    statuses = np.full((len(ids), len(reruns)), "", dtype=object)
    disagreements: list[dict[str, Any]] = []
    for k, rerun in enumerate(reruns, start=1):
        for i in np.flatnonzero(main.attempted & rerun.attempted):
            statuses[i, k - 1] = str(rerun.status[i])
            if main.status[i] != rerun.status[i]:
                disagreements.append({"index": int(i), "image": str(ids[i]), "rerun": k, "status": str(main.status[i]),
                                      "rerun_status": str(rerun.status[i]), "rerun_error": str(rerun.error[i])})
            elif i in main.logits and i in rerun.logits:
                spread[i] = np.fmax(spread[i], max_abs_diff(main.logits[i], rerun.logits[i]))
    return spread, statuses, disagreements


def _table(logits: dict[int, np.ndarray], n: int) -> np.ndarray:
    width = max((v.shape[0] for v in logits.values()), default=0)
    table = np.full((n, width), np.nan, dtype=np.float32)
    for i, v in logits.items():
        table[i, : v.shape[0]] = v
    return table


def run_dataset(backend: dict[str, Any], inputs: str | Path, settings: RunSettings,
                log_path: str | Path) -> Outputs:
    """Run every image of `inputs` (an npz with `x` and `ids`) through `backend` in child processes, then
    rerun the images it attempted `settings.reruns - 1` times in fresh processes to flag nondeterminism.

    Status, error, logits and latencies are the main run's; each rerun's status is kept beside it
    (`Outputs.rerun_status`), and an image whose reruns ended otherwise has the disagreement appended to its
    error and listed in `meta["reruns"]`. Compare treats a failure in any run as a failure of this side.
    """
    with np.load(inputs) as z:
        ids = z["ids"].astype(str)
    n = len(ids)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    reruns: list[_Pass] = []
    check = replace(settings, warmup=0, repeats=1)
    with tempfile.TemporaryDirectory(prefix="deltamut-run-") as scratch, open(log_path, "ab") as log:
        workers = _start_held(backend, inputs, settings, check, log, Path(scratch))
        try:
            main = _run_pass(backend, inputs, n, settings, log, Path(scratch) / "run0", first=workers[0])
            again = np.flatnonzero(main.attempted).tolist()
            for k in range(1, settings.reruns if again else 1):
                reruns.append(_run_pass(backend, inputs, n, check, log, Path(scratch) / f"run{k}", again,
                                        first=workers[k]))
        finally:
            for w in workers:  # the early workers never used (no image left for their run)
                if w is not None and w.held:
                    w.kill()
    rerun_spread, rerun_status, disagreements = _rerun_spread(main, reruns, ids)
    error = main.error.copy()
    for d in disagreements:
        i = d["index"]
        note = f"nondeterministic: rerun {d['rerun']} ended {d['rerun_status']}" + \
            (f" ({d['rerun_error']})" if d["rerun_error"] else "")
        error[i] = f"{error[i]}; {note}" if error[i] else note
    meta = {"backend": {k: v for k, v in backend.items() if k != "model_spec"}, "device_info": main.info,
            "settings": asdict(settings), "events": main.events, "versions": provenance.versions(),
            "host": provenance.host(), "timeline": [main.timeline] + [r.timeline for r in reruns],
            "reruns": {"runs": 1 + len(reruns), "images": len(again),
                       "nondeterministic": int(((np.nan_to_num(rerun_spread) > 0)
                                                | np.isin(np.arange(n), [d["index"] for d in disagreements])).sum()),
                       "disagreements": disagreements,
                       "events": [{**e, "rerun": k} for k, r in enumerate(reruns, start=1) for e in r.events]}}
    if main.events or disagreements or any(s != Status.OK.value for s in main.status):
        meta["log_tail"] = _tail(log_path)
    return Outputs(ids=ids, logits=_table(main.logits, n), latency_ms=main.latency, status=main.status.astype(str),
                   error=error.astype(str), repeat_spread=main.spread, rerun_spread=rerun_spread,
                   rerun_status=rerun_status.astype(str), meta=meta)
