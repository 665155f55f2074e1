"""Entry point of the localise rule: one mutant's propagation profile on one host-CPU device.

The tracing runs in an isolated child with a time limit (deltamut.isolation), so a probe that crashes or hangs
is recorded as such in its profile; a mutant that has no library of its own (equivalent, a twin, failed to
build) is recorded as not probed, with the reason. Every output is written whatever happens.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from deltamut.fsutil import atomic_path, read_json, write_json
from deltamut.isolation import call_isolated
from deltamut.outcome import ProbeStatus, Status


def _probe_worker(original_lib: str, mutant_lib: str, onnx: str | None, inputs: str, predicate: dict,
                  tolerance: float, kernels_out: str) -> dict:
    from deltamut.localise.profile import kernel_table, propagation
    from deltamut.localise.witness import confirmed, witness_images

    images = predicate["images"]
    table, logits = kernel_table(original_lib, mutant_lib, witness_images(inputs, images), images, onnx, tolerance)
    _write_table(table, kernels_out)
    return {"confirmed": confirmed(predicate, logits, tolerance), **propagation(table, logits, tolerance)}


def _write_table(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def localise_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], pair: dict[str, str],
                   settings: dict[str, Any], log: str | Path) -> dict[str, Any]:
    """Profile pair `pair` (`a` the mutant, `b` its original) on the witnesses of its per-image table."""
    from deltamut.localise.witness import witnesses
    from deltamut.report.growth import plot_growth

    record: dict[str, Any] = {"a": pair["a"], "b": pair["b"], "settings": settings}
    deploy = read_json(inputs["mutant_info"])
    predicate = witnesses(inputs["per_image"], pair["a"], pair["b"], int(settings["images"]))
    record["predicate"] = predicate
    if deploy.get("status") != Status.OK.value:
        why = deploy.get("reason") or deploy.get("error") or "see its deploy record"
        record.update(status=ProbeStatus.NOT_PROBED.value,
                      reason=f"the mutant has no library of its own: {deploy.get('status')} ({why})")
    elif not predicate["images"]:
        record.update(status=ProbeStatus.NOT_PROBED.value, reason="no image where both sides ran")
    else:
        res = call_isolated(_probe_worker, {
            "original_lib": str(inputs["original_lib"]), "mutant_lib": str(inputs["mutant_lib"]),
            "onnx": str(inputs["onnx"]) if inputs.get("onnx") else None, "inputs": str(inputs["inputs"]),
            "predicate": predicate, "tolerance": float(settings["tolerance"]),
            "kernels_out": str(outputs["kernels"])}, float(settings["timeout_s"]), log)
        if res.ok:
            record.update(status=ProbeStatus.OK.value, **res.value)
        else:
            record.update(status=res.status, reason=f"the probe itself failed ({res.symptom}): {res.error}",
                          **res.as_record())
    if not Path(outputs["kernels"]).is_file():
        _write_table(pd.DataFrame(), outputs["kernels"])
    write_json(outputs["profile"], record)
    plot_growth(record, outputs["plot"])
    return record
