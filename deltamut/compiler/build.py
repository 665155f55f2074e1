"""Deploy: a lowered (possibly mutated) module -> a shared library for one target.

Scheduling happens here, after mutation, because schedules are target-specific: CPU kernels get the
rule-based schedule when the optimisation asks for it; GPU kernels always need dlight's default GPU
schedules (unscheduled TIR does not bind threads and cannot run on a GPU).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from deltamut.compiler.optconfig import OptConfig
from deltamut.compiler.targets import is_gpu, make_target
from deltamut.fsutil import atomic_path


def schedule(mod, target, target_spec: dict[str, Any], opt: OptConfig) -> tuple[Any, dict[str, Any]]:
    """Apply the schedules this target and configuration call for; return the module and a record of what was
    scheduled how: `rule`, and for the CPU rules each kernel's "rules" or "fallback: why" (`kernels`) and the
    kernels left unscheduled with the reason (`fallbacks`), which compare shows beside a latency verdict."""
    if is_gpu(target_spec):
        from tvm.s_tir import dlight as dl

        with target:
            return dl.ApplyDefaultSchedule(
                dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(), dl.gpu.Fallback()
            )(mod), {"rule": "dlight"}
    if opt.schedule == "rules":
        from deltamut.compiler.cpu_schedule import schedule_cpu_with_report

        mod, kernels = schedule_cpu_with_report(mod, target)
        fallbacks = {k: v.removeprefix("fallback: ") for k, v in kernels.items() if v.startswith("fallback")}
        return mod, {"rule": "rules", "kernels": kernels, "fallbacks": fallbacks}
    return mod, {"rule": "none"}


def build_library(mod, target_spec: dict[str, Any], opt: OptConfig, out: str | Path,
                  instruments: list | None = None) -> dict[str, Any]:
    """Compile `mod` for the target and export it to `out` (atomically); return what was built, for provenance.
    `instruments`: pass instruments for the build's PassContext."""
    import tvm

    target = make_target(target_spec, opt.llvm)
    started = time.perf_counter()
    with opt.pass_context(instruments):
        mod, scheduled = schedule(mod, target, target_spec, opt)
        exe = tvm.compile(mod, target)
    compile_s = time.perf_counter() - started
    kwargs = {}
    if target_spec.get("cross_compiler"):
        from tvm.support import cc

        kwargs["fcompile"] = cc.cross_compiler(target_spec["cross_compiler"])
    with atomic_path(out) as tmp:
        exe.export_library(str(tmp), **kwargs)
    return {"target": str(target), "schedule": scheduled, "compile_s": round(compile_s, 3), "export_s":
            round(time.perf_counter() - started - compile_s, 3)}
