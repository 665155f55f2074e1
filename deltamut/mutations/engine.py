"""The mutate-stage entry point: apply one catalog entry at the right level and describe what changed.

Graph- and model-level operators rewrite the graph-level module and the result is lowered; kernel-level
operators rewrite the lowered module. Either way the caller gets the lowered mutant plus a manifest
that lists every changed site, so a mutant that changed nothing is visible as such (MutateNN wrote
such mutants out silently, or not at all).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import get_operator


@dataclass
class Mutant:
    module: Any  # tvm.IRModule, lowered (for input-level and identity: the lowered original)
    manifest: dict[str, Any] = field(default_factory=dict)


def mutate(graph_module: Any, spec: dict[str, Any], lower: Callable[[Any], Any], original: Any = None) -> Mutant:
    """Apply catalog entry `spec` to the graph-level module; return the lowered mutant and its manifest.

    `lower` turns a graph-level module into the lowered one (the compile stage's pipeline). When the
    lowered `original` is given, the manifest also says whether the mutant is equivalent to it.
    """
    op = get_operator(spec)
    if op.level in ("graph", "model"):
        mutated, report = op.apply(graph_module)
        module = lower(mutated)
    elif op.level == "kernel":
        module, report = op.apply(lower(graph_module))
    else:  # input-level and identity: the model itself is not touched
        module, report = op.apply(lower(graph_module))

    applied = len(report.sites)
    notes = list(report.notes)
    if op.level in ("graph", "model", "kernel") and applied == 0:
        if report.candidates == 0:
            why = op.no_site_reason()
            notes.insert(0, "no candidate site in this model: the mutant equals the original" +
                         (f"; {why}" if why else ""))
        else:
            notes.insert(
                0,
                f"sites {op.sites.describe()} select none of the {report.candidates} candidate sites: "
                "the mutant equals the original",
            )
    if op.name == "identity":
        notes.insert(0, "identity: the original module")
    manifest: dict[str, Any] = {
        "operator": op.name,
        "category": type(op).category_for(spec),
        "level": op.level,
        "description": op.description,
        "params": dict(op.p),
        "seed": op.seed,
        "sites_selected": op.sites.describe(),
        "candidates": report.candidates,
        "applied": applied,
        "sites": report.sites,
        "skipped": report.skipped,
        "note": "; ".join(notes),
    }
    if original is not None:
        manifest["equivalent"] = is_equivalent(module, original)
    return Mutant(module=module, manifest=manifest)


def is_equivalent(a: Any, b: Any) -> bool:
    """Same IR, hence the same program: two builds of one module differ in LLVM text, so binaries can't tell."""
    import tvm_ffi

    return bool(tvm_ffi.structural_equal(a, b))


def structural_key(mod: Any) -> str:
    import tvm_ffi

    return format(int(tvm_ffi.structural_hash(mod)) & 0xFFFFFFFFFFFFFFFF, "016x")


def semantic_key(mod: Any) -> str:
    """The structural hash of the module's canonical form (`_tir.canonical`): equal for mutants that are the
    same mutation after simplification, though their IR differs."""
    from . import _tir

    return structural_key(_tir.canonical(mod))


def ir_text(mod: Any) -> str:
    return mod.script()


def ir_diff(original_text: str, mutant_text: str, name: str, fromfile: str = "original") -> str:
    """A unified diff of two IR texts, from `fromfile` to `name`."""
    return "".join(
        difflib.unified_diff(
            original_text.splitlines(keepends=True),
            mutant_text.splitlines(keepends=True),
            fromfile=fromfile,
            tofile=name,
        )
    )
