"""The timing records a compare job reads: which group timed both sides of a pair, and what it measured."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deltamut.compare.stats import LatencyComparison, compare_rounds
from deltamut.defaults import defaults
from deltamut.fsutil import read_json
from deltamut.outcome import Status
from deltamut.study.refs import FLOAT64


def read_records(files: Iterable[str | Path]) -> list[dict[str, Any]]:
    return [read_json(f) for f in files]


def untimed_reason(variants: dict[str, dict[str, Any]], a: str, b: str) -> str:
    """Why no timing group holds both sides (deltamut.timing.groups), in the pair's own terms."""
    va, vb = variants.get(a, {}), variants.get(b, {})
    if FLOAT64 in (va.get("framework"), vb.get("framework")):
        return "not timed: the float64 reference is a numeric baseline"
    if "input" in (va.get("level"), vb.get("level")):
        return "not timed: an input-level mutant runs the original's library"
    if va.get("device") and vb.get("device") and va["device"] != vb["device"]:
        return f"not timed: on different devices ({va['device']}, {vb['device']}), which cannot be interleaved"
    return "not timed: no timing group holds both sides (a device reached over RPC, or not the host CPU)"


def pair_timing(records: list[dict[str, Any]], variants: dict[str, dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    """{"group", "a", "b"}: the two members' records from the group that timed both; or {"untimed": why}, or
    {"group", "failed": why} when that group could not time one of them (a failure of timing, not a finding)."""
    for rec in records:
        members = rec.get("members", {})
        if a in members and b in members:
            bad = [f"{vid}: {members[vid]['status']} ({members[vid].get('error', '')})" for vid in (a, b)
                   if members[vid]["status"] != Status.OK.value]
            out = {"group": rec.get("group", ""), "a": members[a], "b": members[b],
                   "settings": rec.get("settings", {})}
            return {**out, "failed": "not timed: " + "; ".join(bad)} if bad else out
    return {"untimed": untimed_reason(variants, a, b)}


def compare_members(a: dict[str, Any], b: dict[str, Any],
                    min_undisturbed_share: float | None = None) -> tuple[LatencyComparison, str]:
    """B against A (ratio B / A) over the rounds in which neither block stayed disturbed after its retakes
    (`deltamut.timing.contention`), and why there may be no verdict: where fewer than `min_undisturbed_share`
    of the rounds were undisturbed, the comparison says too little to call the speeds equal or not."""
    busy = [x or y for x, y in itertools.zip_longest(a.get("disturbed", []), b.get("disturbed", []), fillvalue=False)]

    def clean(member: dict[str, Any]) -> list[list[float]]:  # a busy round emptied: compare_rounds skips it
        return [[] if r < len(busy) and busy[r] else calls for r, calls in enumerate(member["rounds"])]

    lat = compare_rounds(clean(a), clean(b))
    rounds = min(len(a["rounds"]), len(b["rounds"]))
    share = defaults("timing")["min_undisturbed_share"] if min_undisturbed_share is None else min_undisturbed_share
    if rounds and lat.n_a < share * rounds:
        return lat, (f"machine busy: only {lat.n_a} of {rounds} rounds ran with the cores to themselves "
                     "(others or the hypervisor took them); no speed claim")
    return lat, ""
