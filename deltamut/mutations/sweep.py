"""Per-site mutants: one mutant per chosen site of a catalog entry, so that findings are per position.

`sites: all` mutates every candidate at once: with 49 convs transposed together, a mutant flips every photo
and says nothing about which layers matter. MutateNN chose positions. An entry with `sites: each` (every
candidate) or `sites: {sample: N, seed: S}` (N candidates drawn with the seed) is a sweep: the study expands
it into one mutant per chosen site, named `<entry>.site<k>` (k: the candidate's index in the operator's
visiting order), whose spec is the entry's with `sites: [[k, k]]`.

How many candidates there are is known only once the model is imported (graph level) or lowered (kernel
level): a census job counts them (`census`), and the workflow reads its file (a Snakemake checkpoint)
before it plans the per-site mutants. The names depend on k alone and a sample is a prefix of one seeded
permutation, so growing `sample:` or editing another entry keeps every existing per-site mutant and its
results. Importing this module imports no TVM.
"""

from __future__ import annotations

import re
from typing import Any

SITE_SEP = ".site"
_SITE_NAME = re.compile(rf"^(?P<entry>.+){re.escape(SITE_SEP)}(?P<site>\d+)$")

__all__ = ["SITE_SEP", "census", "choose_sites", "is_sweep", "site_mutant", "site_spec", "split_site_mutant"]


def is_sweep(spec: dict[str, Any]) -> bool:
    """Whether a catalog entry asks for one mutant per site."""
    sites = spec.get("sites")
    return sites == "each" or isinstance(sites, dict)


def site_mutant(entry: str, site: int) -> str:
    return f"{entry}{SITE_SEP}{site}"


def split_site_mutant(name: str) -> tuple[str, int] | None:
    """`mnn01_sites.site7` -> ("mnn01_sites", 7); None for any other name."""
    m = _SITE_NAME.match(name)
    return (m["entry"], int(m["site"])) if m else None


def site_spec(spec: dict[str, Any], site: int) -> dict[str, Any]:
    """The spec of the sweep's mutant at one site."""
    return {**spec, "sites": [[site, site]]}


def choose_sites(sites: Any, candidates: int) -> list[int]:
    """The candidate indices a sweep's `sites:` picks: all of them, or the first N of one seeded permutation
    (so that a larger N keeps the sites a smaller one chose)."""
    if sites == "each":
        return list(range(candidates))
    import numpy as np

    order = np.random.default_rng(int(sites.get("seed", 0))).permutation(candidates)
    return sorted(int(k) for k in order[: int(sites["sample"])])


def _call_order(module: Any) -> dict[str, int]:
    """PrimFunc name -> the position of its first call in the module's Relax functions (execution order)."""
    import tvm_ffi
    from tvm import relax

    order: dict[str, int] = {}

    def visit(node: Any) -> None:
        if isinstance(node, relax.Call) and getattr(node.op, "name", "") == "relax.call_tir":
            order.setdefault(node.args[0].name_hint, len(order))

    for _gv, func in sorted(module.functions_items(), key=lambda t: t[0].name_hint):
        if isinstance(func, relax.Function):
            tvm_ffi.structural_walk(func, visit)
    return order


def census(module: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """The candidate sites of `spec`'s operator in `module` (the graph as imported for graph- and model-level
    operators, the lowered original for kernel-level ones) and the ones the sweep chooses.

    Each site gets a `depth` in [0, 1]: its position in the model. Graph-level candidates are visited in
    program order, so it is the site's rank; a kernel's sites share the position of the kernel's first call.
    """
    from .base import get_operator

    op = get_operator({**spec, "sites": "all"})
    if op.level not in ("graph", "model", "kernel"):
        raise ValueError(f"operator {op.name} ({op.level} level) has no sites to sweep")
    _, report = op.apply(module)
    n = report.candidates
    if op.level == "kernel":
        order = _call_order(module)
        last = max(len(order) - 1, 1)
        depth = [order.get(s["function"], 0) / last for s in report.sites]
    else:
        depth = [s["node"] / max(n - 1, 1) for s in report.sites]
    sites = [{"site": s["node"], "function": s["function"], "what": s.get("op") or s.get("kind"),
              "before": s["before"], "depth": round(d, 4)} for s, d in zip(report.sites, depth, strict=True)]
    return {"operator": op.name, "level": op.level, "candidates": n, "sites": sites,
            "chosen": choose_sites(spec["sites"], n)}
