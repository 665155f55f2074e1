"""Entry points of the reference and infer rules: one backend spec, one dataset, one result file."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deltamut import provenance
from deltamut.failure import describe, read_failure, root_cause
from deltamut.fsutil import read_json
from deltamut.outcome import Stage, Status
from deltamut.runner.outputs import Outputs, save_outputs
from deltamut.runner.run import RunSettings, run_dataset
from deltamut.study.refs import FLOAT64

_ARCH_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def reference_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], framework: str, model: str,
                    model_spec: dict[str, Any], runner: dict[str, Any], log: str | Path,
                    threads: int | None = None) -> Outputs:
    """Framework reference outputs (PyTorch eager or ONNX Runtime on `inputs["onnx"]`) of the images in
    `inputs["inputs"]`, through the same isolated runner as TVM, to `outputs["outputs"]`."""
    settings = RunSettings.from_dict({**runner, **({"threads": threads} if threads else {})})
    onnx, images, out = inputs["onnx"], inputs["inputs"], outputs["outputs"]
    exported = read_failure(onnx) if framework == "onnxruntime" else None
    if exported is not None:  # a conversion its exporter could not make: ONNX Runtime has nothing to run
        result = _not_run(images, root_cause(exported).get("status", Status.ERROR), describe(exported),
                          {"variant": framework, "framework": framework, "model": model}, Stage.EXPORT)
        save_outputs(out, result)
        return result
    result = run_dataset(framework_backend(framework, model, model_spec, onnx, settings.threads), images,
                         settings, log)
    result.meta.update(variant=framework, framework=framework, model=model,
                       failed_stage=Stage.RUN.value if (result.status != Status.OK).any() else "")
    save_outputs(out, result)
    return result


def framework_backend(framework: str, model: str, model_spec: dict[str, Any], onnx: str | Path,
                      threads: int | None) -> dict[str, Any]:
    """The backend spec of a framework reference: PyTorch eager (float32 or float64) or ONNX Runtime."""
    if framework in ("torch", FLOAT64):
        # torch64: the same module in float64, whose distance to float32 is the noise floor of float32
        # arithmetic. Its logits are stored as float32: rounding them moves them ~1e-7 relative, two orders
        # below the float32-vs-float64 differences they are there to measure.
        return {"kind": "torch", "model": model, "model_spec": model_spec, "threads": threads,
                "dtype": "float64" if framework == FLOAT64 else "float32"}
    if framework == "onnxruntime":
        return {"kind": "onnxruntime", "onnx": str(onnx), "threads": threads}
    raise ValueError(f"unknown framework {framework!r}; known: torch, {FLOAT64}, onnxruntime")


def tvm_backend(lib: str | Path, target_spec: dict[str, Any], device_spec: dict[str, Any]) -> dict[str, Any]:
    """The backend spec of a built TVM library on a device (local, or a board over RPC)."""
    return {"kind": "tvm", "lib": str(lib), "target_kind": target_spec.get("kind", "llvm"),
            **{k: device_spec[k] for k in ("rpc", "tracker", "connect_timeout_s", "session_timeout_s")
               if k in device_spec}}


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


def infer_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], device: str, device_spec: dict[str, Any],
                target_spec: dict[str, Any], runner: dict[str, Any], variant: dict[str, str], log: str | Path,
                threads: int | None = None) -> Outputs:
    """Run one library (`inputs["lib"]`, built as `inputs["info"]` says) on one device over `inputs["inputs"]`;
    a library that was never built yields a result that says why. `threads` (the job's) overrides the config's
    runner.threads: the backend uses what the job was given."""
    settings = RunSettings.from_dict({**runner, **({"threads": threads} if threads else {})})
    deploy_info, images, out = read_json(inputs["info"]), inputs["inputs"], outputs["outputs"]
    meta = {"variant": variant, "device": device, "device_spec": device_spec, "target_spec": target_spec,
            "deploy": deploy_info}
    mismatch = check_device_target(device, device_spec, target_spec)
    if deploy_info.get("status") == Status.EQUIVALENT:
        result = _not_run(images, Status.EQUIVALENT, f"equivalent to {deploy_info.get('reason')}: not run", meta, "")
    elif deploy_info.get("status") != Status.OK:
        root = root_cause(deploy_info)
        result = _not_run(images, root.get("status", Status.ERROR), describe(deploy_info), meta,
                          root.get("stage", Stage.DEPLOY))
    elif mismatch:
        result = _not_run(images, Status.ERROR, mismatch, meta, Stage.RUN)
    else:
        result = run_dataset(tvm_backend(inputs["lib"], target_spec, device_spec), images, settings, log)
        result.meta.update(meta, failed_stage=Stage.RUN.value if (result.status != Status.OK).any() else "")
    save_outputs(out, result)
    return result
