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
from deltamut.localise.witness import SYMPTOM
from deltamut.outcome import ProbeStatus, Status


def _probe_worker(original_lib: str, mutant_lib: str, onnx: str | None, inputs: str, predicate: dict,
                  tolerance: float, kernels_out: str) -> dict:
    from deltamut.localise.profile import kernel_table, propagation
    from deltamut.localise.witness import confirmed, witness_images

    images = predicate["images"]
    table, logits = kernel_table(original_lib, mutant_lib, witness_images(inputs, images), images, onnx, tolerance)
    _write_table(table, kernels_out)
    return {"confirmed": confirmed(predicate, logits, tolerance), **propagation(table, logits, tolerance)}


def _named_worker(onnx_path: str, inputs: str, predicate: dict, named: dict, tolerance: float,
                  nodes_out: str) -> dict:
    """Named mode for a graph- or model-level mutant: the original and the mutant rebuilt from the marked ONNX
    file under the probe's configuration, every node's output read on the witnesses (the original's own rerun
    gives the floors)."""
    import tempfile

    import onnx

    from deltamut.localise.named import build_marked, marked_logits, named_mode, run_marked
    from deltamut.localise.witness import confirmed, witness_images

    images = predicate["images"]
    x = witness_images(inputs, images)
    model = onnx.load(onnx_path)
    with tempfile.TemporaryDirectory(prefix="named-") as work:
        built = {side: build_marked(model, named["optimisation"], named["target"], work,
                                    named["mutation"] if side == "mutant" else None, side)
                 for side in ("original", "mutant")}
        ref, rerun, values = (run_marked(built[side]["lib"], built[side]["names"], x)
                              for side in ("original", "original", "mutant"))
    a, b = marked_logits(model, values), marked_logits(model, ref)
    verdict = confirmed(predicate, {i: {"a": a[j], "b": b[j]} for j, i in enumerate(images)}, tolerance)
    table, record = named_mode(model, values, ref, rerun, images, verdict, tolerance)
    _write_table(table, nodes_out)
    return {**record, "sites": built["mutant"]["sites"]}


def _named(inputs: Mapping[str, str], outputs: Mapping[str, str], predicate: dict, named: dict,
           settings: dict[str, Any], log: str | Path) -> dict[str, Any]:
    """Named mode's record for the profile (module deltamut.localise.named), in a child of its own, so that a
    failure there leaves kernel mode's result standing."""
    if "reason" in named:
        return {"status": ProbeStatus.NOT_PROBED.value, "reason": named["reason"]}
    res = call_isolated(_named_worker, {
        "onnx_path": str(inputs["onnx"]), "inputs": str(inputs["inputs"]), "predicate": predicate, "named": named,
        "tolerance": float(settings["tolerance"]), "nodes_out": str(outputs["nodes"])},
        float(settings["timeout_s"]), log)
    if not res.ok:
        return {"status": res.status, "reason": f"named mode itself failed ({res.symptom}): {res.error}",
                **res.as_record()}
    record = {"status": ProbeStatus.OK.value, **res.value}
    applied = read_json(inputs["manifest"]).get("sites", []) if inputs.get("manifest") else None
    if applied is not None:  # the marked build's mutation must be the mutant's own, site for site
        record["sites_match"] = applied == record["sites"]
    return record


def _symptom(inputs: Mapping[str, str], outputs: Mapping[str, str], predicate: dict, settings: dict[str, Any],
             log: str | Path) -> dict[str, Any]:
    """A failing mutant's profile (deltamut.localise.symptom): each witness rerun in a child of its own, a
    share of the probe's time limit each; the kernel named on the original's trace in a child too."""
    import tempfile

    from deltamut.localise.symptom import locate, names_worker, observe

    share = float(settings["timeout_s"]) / (len(predicate["images"]) + 1)
    with tempfile.TemporaryDirectory(prefix="symptom-") as work:
        table = observe(inputs["mutant_lib"], inputs["inputs"], predicate["images"], share, log, work)
    names = None
    if inputs.get("onnx"):
        res = call_isolated(names_worker, {"lib": str(inputs["original_lib"]), "onnx_path": str(inputs["onnx"]),
                                           "inputs": str(inputs["inputs"]), "image": predicate["images"][0]},
                            share, log)
        names = res.value if res.ok else None
    _write_table(table, outputs["kernels"])
    return {"status": ProbeStatus.OK.value, **locate(table, predicate, names),
            "named": {"status": ProbeStatus.NOT_PROBED.value,
                      "reason": f"named mode compares values, and a {predicate['symptom']} leaves none past it"}}


def _write_table(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def localise_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], pair: dict[str, str],
                   settings: dict[str, Any], log: str | Path, named: dict[str, Any] | None = None) -> dict[str, Any]:
    """Profile pair `pair` (`a` the mutant, `b` its original) on the witnesses of its per-image table: kernel
    mode, then named mode (`named`: what it rebuilds, or why it does not apply; deltamut.localise.plan)."""
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
    elif predicate["kind"] == SYMPTOM:
        record.update(_symptom(inputs, outputs, predicate, settings, log))
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
        record["named"] = _named(inputs, outputs, predicate, named or {"reason": "not asked for"}, settings, log)
    for table in ("kernels", "nodes"):
        if outputs.get(table) and not Path(outputs[table]).is_file():
            _write_table(pd.DataFrame(), outputs[table])
    write_json(outputs["profile"], record)
    plot_growth(record, outputs["plot"])
    return record
