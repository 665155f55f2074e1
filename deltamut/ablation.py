"""Per-pass ablation: an optimisation configuration with one of its steps switched off, for each step.

A configuration such as `extended` is a bundle (graph passes, fusion, constant folding, fast-math, LLVM
optimisation, CPU schedules); when it changes outputs or speed, the bundle does not say which step did it.
Switching each step off in turn and comparing with the full configuration does. The ablated
configurations are ordinary optimisations of the study (compiled, built and run like any other), named
`{base}.no-{step}`, so no stage needs to know about ablation. Imports neither TVM nor torch (planning).
"""

from __future__ import annotations

import copy
from typing import Any

SEP = ".no-"


def ablation_steps(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """step -> the configuration `spec` without that step, for every step `spec` has switched on."""
    steps: dict[str, dict[str, Any]] = {}
    for graph_pass in spec.get("passes", []):
        steps[graph_pass] = {**spec, "passes": [p for p in spec["passes"] if p != graph_pass]}
    for flag in ("fuse", "fold_constants"):  # on unless the configuration turns them off
        if spec.get(flag, True):
            steps[flag] = {**spec, flag: False}
    llvm = spec.get("llvm", {})
    if llvm.get("fast-math"):
        steps["fast-math"] = {**spec, "llvm": {k: v for k, v in llvm.items() if k != "fast-math"}}
    if llvm.get("opt-level", 3) > 0:  # TVM's LLVM codegen runs -O3 when no level is given
        steps["llvm-opt"] = {**spec, "llvm": {**llvm, "opt-level": 0}}
    if spec.get("schedule", "none") != "none":
        steps["schedule"] = {**spec, "schedule": "none"}
    for name, derived in steps.items():
        derived = copy.deepcopy(derived)
        derived["description"] = f"{spec.get('description', 'the configuration')}, without {name}"
        steps[name] = derived
    return steps


def ablated_optimisations(base: str, spec: dict[str, Any], steps: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """`{base}.no-{step}` -> its configuration, for every step of `base` (or those in `steps`)."""
    return {f"{base}{SEP}{step}": derived for step, derived in ablation_steps(spec).items()
            if steps is None or step in steps}
