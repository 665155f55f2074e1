"""How much of a timed block's cores something else took: other processes, or the hypervisor (steal time).

Interleaving cancels a drift of the machine's speed that moves every variant of a round alike, but not a burst
of load that lands on one variant's block only: a neighbour that takes one of two cores for a few hundred ms
makes a pool of two threads wait at every barrier, and the block runs up to 1.5x slow. With a neighbour
spinning 50-300 ms at a time here, the protocol without this found 5 of 15 planted 1.3x slowdowns in ONNX
Runtime and called 3 of 15 A/A pairs of a TVM build slower or faster (docs/verdicts.md); the CI run of 794e9b4
missed 4 of 15 in TVM on a quiet suite. Such bursts are measurable: the time in which some task waited for a
CPU (pressure stall information, /proc/pressure/cpu) and the time the block's cores were busy beyond this
process's own CPU time (/proc/stat, which alone sees the hypervisor's steal). A block in which either exceeds
`timing.max_foreign_share` of it is retaken (`deltamut.timing.rounds`), and a round whose block stayed
disturbed after its retakes is left out of its pairs (`deltamut.timing.records.compare_members`).

/proc/stat counts in clock ticks (10 ms) per CPU, so its reading is uncertain by about one tick per CPU: that
much is allowed on top of the share; PSI counts microseconds. Where neither can be read (not Linux), nothing
is measured and no block counts as disturbed.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
# /proc/stat's per-CPU fields: user nice system idle iowait irq softirq steal ...; busy = all but idle, iowait
_BUSY = (0, 1, 2, 5, 6, 7)


def _cpus() -> frozenset[int]:
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset()


def _busy_s(cpus: frozenset[int]) -> float | None:
    """Seconds the CPUs `cpus` have been busy since boot, by anyone (steal included), or None if unknown."""
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu") and line[3:4].isdigit()]
    except OSError:
        return None
    ticks = [sum(int(p[1 + i]) for i in _BUSY) for p in lines if int(p[0][3:]) in cpus and len(p) > 8]
    return sum(ticks) * _TICK_S if ticks else None


def _stalled_s() -> float | None:
    """Seconds in which some runnable task waited for a CPU (pressure stall information), or None."""
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
    except OSError:
        return None
    total = [p for p in some if p.startswith("total=")]
    return int(total[0][6:]) * 1e-6 if some and some[0] == "some" and total else None


class Snapshot(NamedTuple):
    wall_s: float
    own_cpu_s: float
    busy_s: float | None
    stalled_s: float | None
    cpus: frozenset[int]


def snapshot() -> Snapshot:
    cpus = _cpus()
    return Snapshot(time.perf_counter(), time.process_time(), _busy_s(cpus), _stalled_s(), cpus)


def foreign_share(before: Snapshot, after: Snapshot) -> float | None:
    """How much of the time between two snapshots the cores were not this process's alone, in [0, 1]: the larger
    of the share of it in which some task waited for a CPU (PSI, in microseconds: a neighbour and our threads
    contending) and the share of the cores' time that others or the hypervisor used (/proc/stat, less one tick
    per CPU, its resolution; it alone sees steal time). None where neither can be read."""
    wall = after.wall_s - before.wall_s
    if wall <= 0:
        return None
    shares = []
    if before.stalled_s is not None and after.stalled_s is not None:
        shares.append((after.stalled_s - before.stalled_s) / wall)
    if before.busy_s is not None and after.busy_s is not None and after.cpus:
        foreign = (after.busy_s - before.busy_s) - (after.own_cpu_s - before.own_cpu_s)
        shares.append(max(0.0, foreign - len(after.cpus) * _TICK_S) / (wall * len(after.cpus)))
    return min(1.0, max(shares)) if shares else None
