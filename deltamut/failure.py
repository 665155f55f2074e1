"""Failure records: when a stage cannot produce its artifact, its output file says why instead.

Snakemake needs every declared output; writing a small JSON record in its place lets downstream stages
see the failure (stage, status, symptom, log tail) and pass it on, so one broken variant is a result and
the workflow goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from deltamut.fsutil import write_text

KEY = "deltamut_failure"


def write_failure(path: str | Path, stage: str, record: dict[str, Any]) -> None:
    write_text(path, json.dumps({KEY: {"stage": stage, **record}}, indent=2, default=str) + "\n")


def read_failure(path: str | Path) -> dict[str, Any] | None:
    """The failure record at `path`, or None when the file is a real artifact."""
    path = Path(path)
    if path.stat().st_size > 1 << 20:  # real IR modules and libraries are large; records are small
        return None
    with open(path, "rb") as f:
        head = f.read(64)
    if not head.lstrip().startswith(b"{") or KEY.encode() not in head:
        return None
    return json.loads(path.read_text())[KEY]


def root_cause(record: dict[str, Any]) -> dict[str, Any]:
    """The first failure in a chain of records (a skipped deploy points at the compile that failed)."""
    while isinstance(record.get("upstream"), dict):
        record = record["upstream"]
    return record


def describe(record: dict[str, Any]) -> str:
    root = root_cause(record)
    return f"{root.get('stage', '?')} failed ({root.get('symptom') or root.get('status')}): " \
        f"{root.get('error') or root.get('reason', '')}"
