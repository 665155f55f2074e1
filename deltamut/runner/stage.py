"""Entry points of the reference and infer stages: one backend spec, one dataset, one result file."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np

from deltamut import provenance
from deltamut.failure import describe, read_failure, root_cause
from deltamut.runner.outputs import Outputs, save_outputs
from deltamut.runner.run import RunSettings, run_dataset

_ARCH_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def reference_stage(framework: str, model: str, model_spec: dict[str, Any], onnx: str | Path, inputs: str | Path,
                    runner: dict[str, Any] | None, out: str | Path, log: str | Path,
                    threads: int | None = None) -> Outputs:
    """Framework reference outputs (PyTorch eager or ONNX Runtime) through the same isolated runner as TVM."""
    settings = RunSettings.from_dict({**(runner or {}), **({"threads": threads} if threads else {})})
    exported = read_failure(onnx) if framework == "onnxruntime" else None
    if exported is not None:  # a conversion its exporter could not make: ONNX Runtime has nothing to run
        result = _not_run(inputs, root_cause(exported).get("status", "error"), describe(exported),
                          {"variant": framework, "framework": framework, "model": model}, "export")
        save_outputs(out, result)
        return result
    if framework in ("torch", "torch64"):
        # torch64: the same module in float64, whose distance to float32 is the noise floor of float32
        # arithmetic. Its logits are stored as float32: rounding them moves them ~1e-7 relative, two orders
        # below the float32-vs-float64 differences they are there to measure.
        backend = {"kind": "torch", "model": model, "model_spec": model_spec, "threads": settings.threads,
                   "dtype": "float64" if framework == "torch64" else "float32"}
    elif framework == "onnxruntime":
        backend = {"kind": "onnxruntime", "onnx": str(onnx), "threads": settings.threads}
    else:
        raise ValueError(f"unknown framework {framework!r}; known: torch, torch64, onnxruntime")
    result = run_dataset(backend, inputs, settings, log)
    result.meta.update(variant=framework, framework=framework, model=model,
                       failed_stage="run" if (result.status != "ok").any() else "")
    save_outputs(out, result)
    return result


def _not_run(inputs: str | Path, status: str, error: str, meta: dict[str, Any], stage: str) -> Outputs:
    with np.load(inputs) as z:
        ids = z["ids"].astype(str)
    n = len(ids)
    meta = {**meta, "versions": provenance.versions(), "host": provenance.host(), "failed_stage": stage}
    return Outputs(ids=ids, logits=np.full((n, 0), np.nan, np.float32), latency_ms=np.full((n, 1), np.nan),
                   status=np.full(n, status).astype(str), error=np.full(n, error).astype(str), meta=meta)


def check_device_target(device: str, device_spec: dict[str, Any], target_spec: dict[str, Any]) -> str | None:
    """Why a library for this target cannot run on this device, or None. Only local CPUs can be checked
    before connecting: a remote board tells us on upload."""
    if device_spec.get("rpc") or device_spec.get("tracker") or target_spec.get("kind", "llvm") != "llvm":
        return None
    triple = target_spec.get("mtriple")
    host = _ARCH_ALIASES.get(platform.machine(), platform.machine())
    if triple and _ARCH_ALIASES.get(triple.split("-")[0], triple.split("-")[0]) != host:
        return (f"device {device!r} runs on this host ({host}) but its target builds for {triple}: "
                f"give the device an `rpc:` or `tracker:` entry, or a target for {host}")
    return None


def infer_stage(lib: str | Path, deploy_info: dict[str, Any], device: str, device_spec: dict[str, Any],
                target_spec: dict[str, Any], inputs: str | Path, runner: dict[str, Any] | None,
                variant: dict[str, str], out: str | Path, log: str | Path, threads: int | None = None) -> Outputs:
    """Run one library on one device; a library that was never built yields a result that says why.
    `threads` (the job's) overrides the config's runner.threads: the backend uses what the job was given."""
    settings = RunSettings.from_dict({**(runner or {}), **({"threads": threads} if threads else {})})
    meta = {"variant": variant, "device": device, "device_spec": device_spec, "target_spec": target_spec,
            "deploy": deploy_info}
    mismatch = check_device_target(device, device_spec, target_spec)
    if deploy_info.get("status") == "equivalent":
        result = _not_run(inputs, "equivalent", f"equivalent to {deploy_info.get('reason')}: not run", meta, "")
    elif deploy_info.get("status") != "ok":
        root = root_cause(deploy_info)
        result = _not_run(inputs, root.get("status", "error"), describe(deploy_info), meta,
                          root.get("stage", "deploy"))
    elif mismatch:
        result = _not_run(inputs, "error", mismatch, meta, "run")
    else:
        backend = {"kind": "tvm", "lib": str(lib), "target_kind": target_spec.get("kind", "llvm"),
                   **{k: device_spec[k] for k in ("rpc", "tracker", "connect_timeout_s", "session_timeout_s")
                      if k in device_spec}}
        result = run_dataset(backend, inputs, settings, log)
        result.meta.update(meta, failed_stage="run" if (result.status != "ok").any() else "")
    save_outputs(out, result)
    return result
