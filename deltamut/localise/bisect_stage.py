"""Entry point of the bisect rule: which steps of an optimisation make its build flip labels or move its outputs.

The predicate comes from the compiler pair's rows of the per-image table: top-1 differs from the reference's
(its recorded top-1 on each witness, `reference_top1`) on at least k of the witness images; for a pair that
flips no label, the logits depart from the reference's (its recorded outputs) by at least half as much as the
full build's did (deltamut.localise.witness.against_reference), so a step that only changes numbers (an
ablation step that changes outputs) is found too. A pair whose build fails is recorded as not bisected (its
trial builds would fail in the search's own process); the search runs isolated with a time limit, and a search
that crashes or runs out of time is recorded with its symptom. Where it names culprits of flips and the model
has an ONNX file, the same child cuts the reproducer (deltamut.localise.bundle): the culprit steps alone are the
faulty build, every step off the control.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from deltamut.fsutil import write_json
from deltamut.isolation import call_isolated
from deltamut.localise.witness import FLIPS, SYMPTOM
from deltamut.outcome import ProbeStatus


def reference_logits(outputs: str | list[str], images: list[str]) -> list[list[float]]:
    """The reference's logits on the witness images, from its result files (every shard's)."""
    from deltamut.runner.outputs import load_outputs

    out = load_outputs(outputs)
    ids = [str(i) for i in out.ids]
    return out.logits[[ids.index(i) for i in images]].tolist()


def _bisect_worker(imported: str, onnx_path: str | None, inputs: str, predicate: dict, spec: dict, target: dict,
                   workdir: str, bundle: str, reference: list | None = None) -> dict:
    import numpy as np

    from deltamut.compiler.serialize import load_module
    from deltamut.localise.bisect import Bisector, bisect, with_only
    from deltamut.localise.witness import against_reference, witness_images

    pictures = witness_images(inputs, predicate["images"])
    judge = against_reference(predicate, None if reference is None else np.asarray(reference, np.float64))
    result = bisect(Bisector(load_module(imported), spec, target, pictures, judge, workdir))
    for lib in Path(workdir).glob("*/lib.so"):  # the IR stays; the libraries were only run
        lib.unlink()
    if result["result"] != "found":
        result["bundle"] = {"result": "not_made", "reason": "bisection named no culprit"}
    elif predicate["kind"] != FLIPS:
        result["bundle"] = {"result": "not_made", "reason": "the build flips no label: a reproducer is cut for flips"}
    elif onnx_path is None:
        result["bundle"] = {"result": "not_made", "reason": "the model was imported from torch.export: no ONNX"}
    else:
        import onnx

        from deltamut.localise.bundle import CONTROL, FAULTY, make_bundle

        builds = {FAULTY: with_only(spec, result["culprits"]), CONTROL: with_only(spec, [])}
        found = make_bundle(onnx.load(onnx_path), pictures, predicate, builds, target, bundle,
                            {"culprits": result["culprits"], "configuration": spec})
        result["bundle"] = {k: found[k] for k in ("result", "path", "nodes_before", "nodes_after", "window",
                                                  "reason") if k in found}
        result["bundle"]["builds"] = len(found["trials"])
    return result


def _named(inputs: Mapping[str, str], outputs: Mapping[str, str], predicate: dict, result: dict, spec: dict,
           target: dict, settings: dict[str, Any], log: str | Path) -> dict[str, Any]:
    """Named mode's record for bisect.json, in a child of its own (a failure there leaves the bisection
    standing); only where the bisection named culprits and the model has an ONNX file."""
    from deltamut.localise.bisect import with_only
    from deltamut.localise.named import for_culprits

    if result.get("result") != "found":
        return {"status": ProbeStatus.NOT_PROBED.value, "reason": "bisection named no culprit"}
    if predicate["kind"] != FLIPS:
        return {"status": ProbeStatus.NOT_PROBED.value,
                "reason": "named mode's check that marking keeps the finding judges labels; the build flips none"}
    if not inputs.get("onnx"):
        return {"status": ProbeStatus.NOT_PROBED.value,
                "reason": "the model was imported from torch.export: no ONNX file to mark"}
    res = call_isolated(for_culprits, {
        "onnx_path": str(inputs["onnx"]), "inputs": str(inputs["inputs"]), "predicate": predicate,
        "faulty": with_only(spec, result["culprits"]), "control": with_only(spec, []), "target": target,
        "tolerance": float(settings["tolerance"]), "nodes_out": str(outputs["nodes"])},
        float(settings["timeout_s"]), log)
    if not res.ok:
        return {"status": res.status, "reason": f"named mode itself failed ({res.symptom}): {res.error}",
                **res.as_record()}
    return {"status": ProbeStatus.OK.value, "culprits": result["culprits"], **res.value}


def bisect_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], pair: dict[str, str],
                 spec: dict[str, Any], target: dict[str, Any], settings: dict[str, Any],
                 log: str | Path) -> dict[str, Any]:
    from deltamut.localise.witness import witnesses

    record: dict[str, Any] = {"a": pair["a"], "b": pair["b"], "settings": settings}
    predicate = witnesses(inputs["per_image"], pair["a"], pair["b"], int(settings["images"]))
    record["predicate"] = predicate
    Path(outputs["ir"]).mkdir(parents=True, exist_ok=True)
    Path(outputs["bundle"]).mkdir(parents=True, exist_ok=True)
    if predicate["kind"] == SYMPTOM:
        record.update(status=ProbeStatus.NOT_BISECTED.value,
                      reason=f"the build fails ({predicate['symptom']}): its trial builds would fail in the search")
    elif not predicate["images"]:
        record.update(status=ProbeStatus.NOT_BISECTED.value, reason="no image where both sides ran")
    else:
        reference = None if predicate["kind"] == FLIPS else reference_logits(inputs["reference"], predicate["images"])
        res = call_isolated(_bisect_worker, {
            "imported": str(inputs["imported"]), "onnx_path": str(inputs["onnx"]) if inputs.get("onnx") else None,
            "inputs": str(inputs["inputs"]), "predicate": predicate, "spec": spec, "target": target,
            "workdir": str(outputs["ir"]), "bundle": str(outputs["bundle"]), "reference": reference},
            float(settings["timeout_s"]), log)
        if res.ok:
            record.update(status=ProbeStatus.OK.value, **res.value)
            record["named"] = _named(inputs, outputs, predicate, res.value, spec, target, settings, log)
        else:
            record.update(status=res.status, reason=f"the search itself failed ({res.symptom}): {res.error}",
                          **res.as_record())
    if outputs.get("nodes") and not Path(outputs["nodes"]).is_file():
        pd.DataFrame().to_parquet(outputs["nodes"], index=False)
    write_json(outputs["record"], record)
    return record
