"""Compilation targets of the study: x86-64 and aarch64 CPUs through LLVM, and CUDA.

A target spec comes from the config's `targets:` entry; the optimisation configuration adds LLVM
codegen attributes. `mcpu: host` (the default for a CPU target without a cross triple) means the CPU of
the machine that builds the library: on a cluster, set a concrete `mcpu` if build and run nodes differ.
"""

from __future__ import annotations

import os
from typing import Any

CPU_KINDS = ("llvm",)
GPU_KINDS = ("cuda",)


def make_target(spec: dict[str, Any], llvm: dict[str, Any] | None = None):
    """A `tvm.target.Target` from a target spec plus the optimisation's LLVM attributes.

    TVM 0.27 rejects option strings ("llvm -mtriple=..."), so targets are always built from dicts.
    """
    import tvm

    kind = spec.get("kind", "llvm")
    if kind in CPU_KINDS:
        attrs: dict[str, Any] = {"kind": "llvm"}
        if spec.get("mtriple"):
            attrs["mtriple"] = spec["mtriple"]
        mcpu = spec.get("mcpu", "host" if not spec.get("mtriple") else None)
        if mcpu == "host":
            mcpu = tvm.target.codegen.llvm_get_system_cpu()
        if mcpu:
            attrs["mcpu"] = mcpu
        if spec.get("mattr"):
            attrs["mattr"] = list(spec["mattr"])
        attrs["num-cores"] = int(spec.get("num_cores") or os.cpu_count() or 1)
        for key in ("opt-level", "fast-math"):
            if llvm and key in llvm:
                attrs[key] = llvm[key]
        return tvm.target.Target(attrs)
    if kind in GPU_KINDS:
        host = {"kind": "llvm"}
        if spec.get("host_mtriple"):
            host["mtriple"] = spec["host_mtriple"]
        return tvm.target.Target({"kind": kind, "arch": spec.get("arch", "sm_80"), "host": host})
    raise ValueError(f"target kind {kind!r} is not supported; use one of {CPU_KINDS + GPU_KINDS}")


def is_gpu(spec: dict[str, Any]) -> bool:
    return spec.get("kind", "llvm") in GPU_KINDS
