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
                  tolerance: float, kernels_out: str, mutant_device: dict | None = None) -> dict:
    from deltamut.localise.profile import kernel_table, propagation
    from deltamut.localise.witness import confirmed, witness_images

    images = predicate["images"]
    table, logits = kernel_table(original_lib, mutant_lib, witness_images(inputs, images), images, onnx, tolerance,
                                 mutant_device)
    _write_table(table, kernels_out)
    return {"confirmed": confirmed(predicate, logits, tolerance), **propagation(table, logits, tolerance)}


def _not_probed(reason: str) -> dict[str, str]:
    return {"status": ProbeStatus.NOT_PROBED.value, "reason": reason}


def _named(inputs: Mapping[str, str], outputs: Mapping[str, str], predicate: dict, rebuild: dict,
           settings: dict[str, Any], log: str | Path) -> dict[str, Any]:
    """Named mode's record for the profile (deltamut.localise.named.for_mutant), in a child of its own, so
    that a failure there leaves kernel mode's result standing. A kernel-level mutant's sites are stores and
    expressions of the lowered kernels, and marking every tensor an output changes which kernels there are
    (fusion), so its sites do not carry over to the marked build: kernel mode names its kernel instead."""
    from deltamut.localise.named import for_mutant

    if not inputs.get("onnx"):
        return _not_probed("the model was imported from torch.export: no ONNX file to mark")
    if "mutation" not in rebuild:
        return _not_probed(f"a {rebuild.get('level')}-level mutant's sites are in the lowered kernels, which the "
                           "marked build fuses otherwise; kernel mode names its kernel")
    res = call_isolated(for_mutant, {
        "onnx_path": str(inputs["onnx"]), "inputs": str(inputs["inputs"]), "predicate": predicate,
        "rebuild": rebuild, "tolerance": float(settings["tolerance"]), "nodes_out": str(outputs["nodes"])},
        float(settings["timeout_s"]), log)
    if not res.ok:
        return {"status": res.status, "reason": f"named mode itself failed ({res.symptom}): {res.error}",
                **res.as_record()}
    record = {"status": ProbeStatus.OK.value, **res.value}
    applied = read_json(inputs["manifest"]).get("sites", []) if inputs.get("manifest") else None
    if applied is not None:  # the marked build's mutation must be the mutant's own, site for site
        record["sites_match"] = applied == record["sites"]
    return record


def _bundle(inputs: Mapping[str, str], outputs: Mapping[str, str], predicate: dict, rebuild: dict,
            settings: dict[str, Any], log: str | Path) -> dict[str, Any]:
    """A kernel-level mutant's reproducer (deltamut.localise.bundle.for_mutant), in a child of its own: the
    smallest window of ONNX nodes whose build, with the mutant's kernels transplanted, still flips labels."""
    from deltamut.localise.bundle import for_mutant

    if rebuild.get("level") != "kernel":
        return {"result": "not_made", "reason": f"a {rebuild.get('level')}-level mutant changes no kernel to carry"}
    if predicate["kind"] != "flips":
        return {"result": "not_made", "reason": "the pair flips no label: a label predicate has nothing to cut"}
    if not inputs.get("onnx"):
        return {"result": "not_made", "reason": "the model was imported from torch.export: no ONNX"}
    kernels = sorted({s["function"] for s in read_json(inputs["manifest"]).get("sites", [])})
    res = call_isolated(for_mutant, {
        "onnx_path": str(inputs["onnx"]), "inputs": str(inputs["inputs"]), "predicate": predicate,
        "rebuild": rebuild, "original_module": str(inputs["original_module"]),
        "mutant_module": str(inputs["mutant_module"]), "kernels": kernels, "out": str(outputs["bundle"])},
        float(settings["timeout_s"]), log)
    if not res.ok:
        return {"result": res.status, "reason": f"the search itself failed ({res.symptom}): {res.error}"}
    return res.value


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


def _kernel_probe(inputs: Mapping[str, str], outputs: Mapping[str, str], predicate: dict,
                  settings: dict[str, Any], log: str | Path, device: dict[str, Any] | None) -> dict[str, Any]:
    """Kernel mode, in a child of its own: `original_lib` traced and named, `mutant_lib` replayed (on `device`
    where given: deltamut.localise.profile.kernel_table)."""
    res = call_isolated(_probe_worker, {
        "original_lib": str(inputs["original_lib"]), "mutant_lib": str(inputs["mutant_lib"]),
        "onnx": str(inputs["onnx"]) if inputs.get("onnx") else None, "inputs": str(inputs["inputs"]),
        "predicate": predicate, "tolerance": float(settings["tolerance"]),
        "kernels_out": str(outputs["kernels"]), "mutant_device": device}, float(settings["timeout_s"]), log)
    if res.ok:
        return {"status": ProbeStatus.OK.value, **res.value}
    return {"status": res.status, "reason": f"the probe itself failed ({res.symptom}): {res.error}",
            **res.as_record()}


def _profile(inputs: Mapping[str, str], outputs: Mapping[str, str], pair: dict[str, str],
             settings: dict[str, Any], log: str | Path, whose: str,
             device: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """The record every probe starts with: its predicate, then why it cannot run, the failure's kernel, or
    kernel mode (`device`: where the `a` side's library runs when not on this CPU, else None); and the predicate, and
    whether kernel mode ran (the values the other modes read are there)."""
    from deltamut.localise.witness import witnesses

    record: dict[str, Any] = {"a": pair["a"], "b": pair["b"], "settings": settings}
    predicate = witnesses(inputs["per_image"], pair["a"], pair["b"], int(settings["images"]))
    record["predicate"] = predicate
    deploy = read_json(inputs["mutant_info"])
    if deploy.get("status") != Status.OK.value:
        why = deploy.get("reason") or deploy.get("error") or "see its deploy record"
        record.update(_not_probed(f"{whose} has no library of its own: {deploy.get('status')} ({why})"))
    elif not predicate["images"]:
        record.update(_not_probed("no image where both sides ran"))
    elif predicate["kind"] == SYMPTOM and device is not None:
        record.update(_not_probed(f"{whose}'s build fails there, and the failing kernel is found by rerunning each "
                                  "witness in a child process of this CPU's, which does not run that build"))
    elif predicate["kind"] == SYMPTOM:
        record.update(_symptom(inputs, outputs, predicate, settings, log))
    else:
        record.update(_kernel_probe(inputs, outputs, predicate, settings, log, device))
        return record, predicate, True
    return record, predicate, False


def _finish(record: dict[str, Any], outputs: Mapping[str, str]) -> dict[str, Any]:
    from deltamut.report.growth import plot_growth

    for table in ("kernels", "nodes"):
        if outputs.get(table) and not Path(outputs[table]).is_file():
            _write_table(pd.DataFrame(), outputs[table])
    write_json(outputs["profile"], record)
    plot_growth(record, outputs["plot"])
    return record


def device_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], pair: dict[str, str],
                 settings: dict[str, Any], log: str | Path, device: dict[str, Any] | None = None) -> dict[str, Any]:
    """Profile device pair `pair` (`a` a device's build, `b` the baseline device's, which runs on this CPU):
    kernel mode with the baseline's build traced and each of the device's kernels replayed on its inputs, on
    the device itself (`device`: its backend spec without the library, a board over RPC or a GPU; None: this
    CPU), so the kernels whose code differs across the targets are told from those that carry the difference;
    or, where the device's build fails on this CPU, the kernel it fails in. Named mode and reproducers do not
    apply: both builds come from one module, and what differs is each target's code generation."""
    from deltamut.devices.tvm_backend import where
    from deltamut.study.placement import is_host_cpu

    device = device or {}
    elsewhere = not is_host_cpu(device, {"kind": device.get("target_kind", "llvm")})
    record, _, _ = _profile(inputs, outputs, pair, settings, log, "the device", device if elsewhere else None)
    record["replayed_on"] = f"{device.get('target_kind', 'llvm')} on {where(device)}"
    return _finish(record, outputs)


def localise_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], pair: dict[str, str],
                   settings: dict[str, Any], log: str | Path, rebuild: dict[str, Any]) -> dict[str, Any]:
    """Profile pair `pair` (`a` the mutant, `b` its original) on the witnesses of its per-image table: kernel
    mode, then named mode and the reproducer (`rebuild`: the configuration, target, level and, for a graph-level
    mutant, its entry; deltamut.localise.plan.rebuild_of), or the failure's kernel."""
    record, predicate, traced = _profile(inputs, outputs, pair, settings, log, "the mutant")
    if traced:
        record["named"] = _named(inputs, outputs, predicate, rebuild, settings, log)
        record["bundle"] = _bundle(inputs, outputs, predicate, rebuild, settings, log)
    Path(outputs["bundle"]).mkdir(parents=True, exist_ok=True)
    return _finish(record, outputs)
