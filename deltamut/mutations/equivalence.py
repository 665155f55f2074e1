"""Mutants equal to each other: the one with the first name is built and run, the others are not.

The mutate stage already catches a mutant equal to the *original* (it has the original's module at hand).
Two mutants can also lower to the same IR (two operators whose only sites rewrite the same node, or one
spec under two names), or to IR that differs only until it is simplified (`a < b + 0.5` and `a <= b` on
integer indices); building both would spend a compile and a run to learn nothing, and counting both would
count one mutation twice. Each mutant's manifest carries the structural hash of its lowered module and of
its canonical form, so the duplicates of a (model, optimisation) are found from the manifests alone,
without loading any module. The representative of a group is the
mutant with the smallest name, so the choice does not depend on the order in which jobs happened to run.

Deploy jobs read the index as an `ancient` input, so that editing one mutation rebuilds only that mutant.
The price: when the edited mutation X had a twin Y, Y keeps its "duplicate of X" record until its own
jobs rerun (`snakemake --forcerun deploy` or editing Y). A static DAG cannot do better, since whether Y
duplicates X is only known after X's mutate job has run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deltamut.outcome import Status

__all__ = ["duplicates"]


def duplicates(manifests: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """mutant -> (the mutant it duplicates, how: "ir" or "semantics"), for every mutant whose lowered module
    equals a mutant's with a smaller name: the same IR (structural hash), or the same IR once both are in
    canonical form (semantic hash, `_tir.canonical`: `a < b + 0.5` and `a <= b` on integer indices). Only
    built-able mutants count: a failed or already-equivalent one is never a twin."""
    by_ir: dict[str, str] = {}
    by_semantics: dict[str, str] = {}
    twins: dict[str, tuple[str, str]] = {}
    for name in sorted(manifests):
        manifest = manifests[name]
        digest, meaning = manifest.get("structural_hash"), manifest.get("semantic_hash")
        if manifest.get("status") != Status.OK or not digest or manifest.get("operator") == "identity":
            continue
        if digest in by_ir:
            twins[name] = (by_ir[digest], "ir")
        elif meaning and meaning in by_semantics:
            twins[name] = (by_semantics[meaning], "semantics")
        else:
            by_ir[digest] = name
            if meaning:
                by_semantics.setdefault(meaning, name)
    return twins
