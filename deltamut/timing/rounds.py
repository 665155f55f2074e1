"""Interleaved timing of a comparison group: every variant in a worker process of its own, timed in rounds.

Timings taken by separate jobs minutes apart compare the machine's load at two moments, not two variants: in
an A/A test of one runner against itself, 5 to 14 of 15 such comparisons came out `slower` or `faster`
(docs/verdicts.md). Here the variants a verdict compares are loaded side by side, each warmed up until its
calls settle, and then timed in rounds: in each round every variant runs one block of back-to-back calls, in
an order rotated by one each round (no variant always follows the same one), so a drift of the load moves
all of a round alike and cancels in the round's ratio (`deltamut.compare.stats.compare_rounds`).

Only one worker computes at a time; the others wait on their stdin. An idle pool spins before it sleeps, so
the workers' pools spin briefly (`pool_spin_count`: TVM's default spun on past the gap before each block, into
the next variant's calls) and the first call of each block is dropped: it competes with the threads of the
variant before, still spinning (TVM came out 7x slower without that on 2 cores). A block holds as many calls
as fit in `block_s` (at least one kept, at most `max_block`), so a 500 ms unscheduled build is not called as
often as a 5 ms one: a timing budget, not a fixed repeat count; a call that outlasts `block_s` is the block
alone, with nothing dropped. A burst of load that lands on one block does not cancel: a block during which
others took the cores is retaken (`deltamut.timing.contention`), within a budget for the whole job.

A variant whose worker fails to open, hangs or dies is recorded with what happened and the rounds it
finished; the others go on. Its pairs get no verdict: a failure of timing is never a finding about speed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deltamut import provenance
from deltamut.defaults import schema_field
from deltamut.outcome import Status
from deltamut.procutil import EventPipe, spawn
from deltamut.runner.run import worker_env


@dataclass(frozen=True)
class TimingSettings:
    """The protocol of a timing job (the config's `timing:`, defaults and all; limits and threads from
    `runner:`)."""

    rounds: int = schema_field("timing", "rounds")
    block_s: float = schema_field("timing", "block_s")
    max_block: int = schema_field("timing", "max_block")
    images: int = schema_field("timing", "images")
    gap_s: float = schema_field("timing", "gap_s")
    pool_spin_count: int | None = schema_field("timing", "pool_spin_count")
    max_foreign_share: float = schema_field("timing", "max_foreign_share")
    retakes: int = schema_field("timing", "retakes")
    retake_share: float = schema_field("timing", "retake_share")
    min_undisturbed_share: float = schema_field("timing", "min_undisturbed_share")
    stable_calls: int = schema_field("timing", "stable_calls")
    stable_tolerance: float = schema_field("timing", "stable_tolerance")
    warmup_max_calls: int = schema_field("timing", "warmup_max_calls")
    warmup_max_s: float = schema_field("timing", "warmup_max_s")
    open_timeout_s: float = schema_field("runner", "open_timeout_s")
    call_timeout_s: float = schema_field("runner", "image_timeout_s")
    threads: int | None = None

    @classmethod
    def from_config(cls, timing: dict[str, Any] | None, runner: dict[str, Any] | None = None,
                    threads: int | None = None) -> TimingSettings:
        runner = runner or {}
        given = {k: v for k, v in (timing or {}).items() if k in cls.__dataclass_fields__}
        limits = {"open_timeout_s": runner.get("open_timeout_s"), "call_timeout_s": runner.get("image_timeout_s")}
        given.update({k: v for k, v in limits.items() if v is not None})
        return cls(**given, threads=threads or runner.get("threads"))

    def calls_per_block(self, call_ms: float) -> int:
        """Calls in one block: the dropped first one, then as many as fit in `block_s`, at least one; or, for a
        call as long as the block, that one call kept. The dropped call pays for the previous variant's pool
        still spinning and for caches it left cold, a cost of well under a millisecond that would swamp a 5 ms
        call but is lost in a 300 ms one, whose dropped twin would double the block (an unscheduled build's
        two calls a round were a third of the default study's timing)."""
        if not call_ms or not math.isfinite(call_ms):
            return 2
        if call_ms >= self.block_s * 1e3:
            return 1
        return max(2, min(int(self.max_block), math.ceil(self.block_s * 1e3 / call_ms) + 1))

    def retake_budget(self, blocks: int) -> int:
        """Retakes a job may spend in all: `retake_share` of its blocks. A burst passes and its blocks are
        retaken; a machine busy throughout would otherwise retake every block `retakes` times, quadrupling the
        job to give rounds that are all disturbed anyway."""
        return math.floor(self.retake_share * blocks)


@dataclass
class _Member:
    """One variant of the group and its worker."""

    vid: str
    pipe: EventPipe | None = None
    status: str = Status.OK.value
    error: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    warmup: dict[str, Any] = field(default_factory=dict)
    calls: int = 0
    rounds: list[list[float]] = field(default_factory=list)
    foreign: list[float | None] = field(default_factory=list)
    disturbed: list[bool] = field(default_factory=list)
    retaken: int = 0

    @property
    def live(self) -> bool:
        return self.pipe is not None and self.status == Status.OK.value

    def fail(self, status: Status, error: str) -> None:
        self.status, self.error = status.value, error
        if self.pipe is not None:
            self.pipe.kill()
            self.pipe = None

    def record(self) -> dict[str, Any]:
        return {"status": self.status, "error": self.error, "info": self.info, "warmup": self.warmup,
                "calls_per_block": self.calls, "rounds": self.rounds, "foreign": self.foreign,
                "disturbed": self.disturbed, "retaken": self.retaken}


def _ended(ev: dict | None, waited_s: float, doing: str) -> tuple[Status, str]:
    """How a worker that did not answer as asked ended."""
    if ev is None:
        return Status.TIMEOUT, f"no answer within {waited_s:g} s while {doing}"
    if "returncode" in ev:  # EventPipe's end-of-output event
        return Status.CRASH, f"worker exited with code {ev['returncode']} while {doing}"
    return Status.ERROR, f"{ev.get('error', ev)} (while {doing})"


def _start(member: _Member, k: int, backend: dict[str, Any], inputs: str | Path, images: list[int],
           settings: TimingSettings, scratch: Path, log) -> None:
    job = {"backend": {key: v for key, v in backend.items() if key != "planted_slowdown"}, "inputs": str(inputs),
           "images": images, "stable_calls": settings.stable_calls, "stable_tolerance": settings.stable_tolerance,
           "max_calls": settings.warmup_max_calls, "max_s": settings.warmup_max_s,
           "planted_slowdown": backend.get("planted_slowdown")}
    path = scratch / f"{k}.json"
    path.write_text(json.dumps(job))
    proc = spawn([sys.executable, "-m", "deltamut.timing.worker", str(path)], stdin=subprocess.PIPE,
                 stdout=subprocess.PIPE, stderr=log, env=timing_env(settings))
    member.pipe = EventPipe(proc)


def timing_env(settings: TimingSettings) -> dict[str, str]:
    """A timing worker's environment: its pools' size, and how long their idle threads spin. Only one variant
    computes at a time, but every variant's pool spins after its block: with TVM's default (300000 spins, past
    the gap), the next variant's calls shared the cores with it, and six workers of one build timed 14 to 33 ms
    where each alone takes 7 (docs/verdicts.md)."""
    env = worker_env(settings.threads)
    if settings.pool_spin_count is not None:
        env["TVM_THREAD_POOL_SPIN_COUNT"] = env["GOMP_SPINCOUNT"] = str(int(settings.pool_spin_count))
    return env


def _ask(member: _Member, message: dict[str, Any], expect: str, timeout_s: float, doing: str) -> dict | None:
    """Send one command and wait for its answer; on anything else the member has failed (and is killed)."""
    ev = member.pipe.next_event(timeout_s if member.pipe.send(message) else 1.0)
    if ev is not None and ev.get("event") == expect:
        return ev
    member.fail(*_ended(ev, timeout_s, doing))
    return None


def _open_all(members: list[_Member], settings: TimingSettings) -> None:
    """Wait for every worker's backend to open (they load side by side: nothing is timed yet)."""
    deadline = time.monotonic() + settings.open_timeout_s
    for m in members:
        if not m.live:
            continue
        ev = m.pipe.next_event(max(deadline - time.monotonic(), 0.0))
        if ev is not None and ev.get("event") == "ready":
            m.info = ev.get("info", {})
        else:
            m.fail(*_ended(ev, settings.open_timeout_s, "opening the backend"))


def _warm_all(members: list[_Member], settings: TimingSettings) -> None:
    """Warm each variant up in turn, alone, until its calls settle; its block size follows its call time."""
    for m in members:
        if not m.live:
            continue
        ev = _ask(m, {"cmd": "warmup"}, "warm", settings.warmup_max_s + settings.call_timeout_s, "warming up")
        if ev is not None:
            m.warmup = {k: ev[k] for k in ("calls", "stable", "call_ms", "times_ms")}
            m.calls = settings.calls_per_block(ev["call_ms"])


def _disturbed(foreign: float | None, settings: TimingSettings) -> bool:
    return foreign is not None and foreign > settings.max_foreign_share


def _block(m: _Member, r: int, settings: TimingSettings, n_images: int, retakes_left: int) -> None:
    """Round r's block of one variant, retaken while others took more than `max_foreign_share` of the cores
    (`deltamut.timing.contention`), at most `retakes` times and at most `retakes_left` (what the job's budget
    has left); the last take is kept, flagged if disturbed."""
    drop, most = m.calls > 1, min(int(settings.retakes), max(retakes_left, 0))
    for take in range(most + 1):
        # let the previous variant's pool threads stop spinning; before a retake, let the burst pass
        time.sleep(settings.gap_s if take == 0 else max(settings.gap_s, settings.block_s))
        ev = _ask(m, {"cmd": "block", "image": r % n_images, "calls": m.calls, "drop": drop}, "block",
                  settings.call_timeout_s * m.calls, f"timing round {r}")
        if ev is None:
            return
        foreign = ev.get("foreign")
        if not _disturbed(foreign, settings) or take == most:
            break
        m.retaken += 1
    m.rounds.append(ev["ms"][1:] if drop else ev["ms"])
    m.foreign.append(foreign)
    m.disturbed.append(_disturbed(foreign, settings))


def _rounds(members: list[_Member], settings: TimingSettings, n_images: int) -> int:
    """The interleaved rounds; returns how many ran."""
    done = 0
    budget = settings.retake_budget(int(settings.rounds) * sum(m.live for m in members))
    for r in range(int(settings.rounds)):
        live = [m for m in members if m.live]
        if not live:
            break
        shift = r % len(live)
        for m in live[shift:] + live[:shift]:
            _block(m, r, settings, n_images, budget - sum(x.retaken for x in members))
        done = r + 1
    return done


def time_group(backends: dict[str, dict[str, Any]], inputs: str | Path, settings: TimingSettings,
               log_path: str | Path, not_run: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """Time the variants `backends` (id -> backend spec) on the first `settings.images` images of `inputs` in
    interleaved rounds; `not_run` (id -> {"status", "error"}): members that have nothing to run (not built),
    recorded as such. Returns the group's record (`members`: id -> status, warm-up, rounds of kept calls)."""
    with np.load(inputs) as z:
        ids = z["ids"].astype(str)
    images = list(range(min(int(settings.images), len(ids))))
    members = [_Member(vid) for vid in backends]
    load_before = os.getloadavg()
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    n_rounds = 0
    with tempfile.TemporaryDirectory(prefix="deltamut-timing-") as scratch, open(log_path, "ab") as log:
        try:
            if images:
                for k, m in enumerate(members):
                    _start(m, k, backends[m.vid], inputs, images, settings, Path(scratch), log)
                _open_all(members, settings)
                _warm_all(members, settings)
                n_rounds = _rounds(members, settings, len(images))
            else:
                for m in members:
                    m.fail(Status.SKIPPED, "no images to time")
        finally:
            for m in members:
                if m.pipe is not None:
                    m.pipe.send({"cmd": "stop"})
                    with contextlib.suppress(Exception):
                        m.pipe.proc.wait(timeout=10)
                    m.pipe.kill()
    record = {vid: {"status": st.get("status", Status.SKIPPED.value), "error": st.get("error", ""), "rounds": []}
              for vid, st in (not_run or {}).items()}
    record.update({m.vid: m.record() for m in members})
    return {"members": record, "images": ids[images].tolist(), "rounds": n_rounds, "settings": asdict(settings),
            "order": "rotated by one each round", "load_before": load_before, "load_after": os.getloadavg(),
            "versions": provenance.versions(), "host": provenance.host()}
