"""Entry point of the timing rule: one comparison group's variants, timed in interleaved rounds, to one record."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deltamut.failure import describe, read_failure, root_cause
from deltamut.fsutil import read_json, write_json
from deltamut.outcome import Status
from deltamut.runner.stage import framework_backend, tvm_backend
from deltamut.timing.rounds import TimingSettings, time_group


def _backend(member: dict[str, Any], model: str, model_spec: dict[str, Any], target_spec: dict[str, Any],
             device_spec: dict[str, Any], threads: int | None) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The backend spec of a member, or None and why it has nothing to run (its build or export failed, or it
    is an equivalent mutant that was never built)."""
    framework = member["framework"]
    if framework == "tvm":
        info = read_json(member["info"])
        if info.get("status") == Status.EQUIVALENT:
            return None, {"status": Status.EQUIVALENT.value, "error": f"equivalent to {info.get('reason')}: not run"}
        if info.get("status") != Status.OK:
            return None, {"status": root_cause(info).get("status", Status.ERROR), "error": describe(info)}
        return tvm_backend(member["lib"], target_spec, device_spec), {}
    if framework == "onnxruntime" and (failed := read_failure(member["onnx"])) is not None:
        return None, {"status": root_cause(failed).get("status", Status.ERROR), "error": describe(failed)}
    return framework_backend(framework, model, model_spec, member.get("onnx", ""), threads), {}


def timing_stage(*, inputs: Mapping[str, Any], output: str | Path, model: str, group: str,
                 members: dict[str, dict[str, Any]], model_spec: dict[str, Any], device_spec: dict[str, Any],
                 target_spec: dict[str, Any], runner: dict[str, Any], timing: dict[str, Any], log: str | Path,
                 threads: int | None = None) -> dict[str, Any]:
    """Time the members of `group` on the first images of `inputs["inputs"]` and write the record to `output`."""
    settings = TimingSettings.from_config(timing, runner, threads)
    backends, not_run = {}, {}
    for vid, member in members.items():
        backend, why = _backend(member, model, model_spec, target_spec, device_spec, settings.threads)
        if backend is None:
            not_run[vid] = why
        else:
            backends[vid] = backend
    record = time_group(backends, inputs["inputs"], settings, log, not_run)
    record.update(model=model, group=group)
    write_json(output, record)
    return record
