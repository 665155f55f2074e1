"""The timing records a compare job reads: which group timed both sides of a pair, and what it measured."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
            out = {"group": rec.get("group", ""), "a": members[a], "b": members[b]}
            return {**out, "failed": "not timed: " + "; ".join(bad)} if bad else out
    return {"untimed": untimed_reason(variants, a, b)}
