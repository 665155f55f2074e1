"""The localisation section of the study summary: one line per probe, and the probes the budget left out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deltamut.fsutil import read_json
from deltamut.outcome import ProbeStatus
from deltamut.report.common import shorten
from deltamut.study.refs import parse_variant_id


def _flips_text(pred: dict) -> str | None:
    if pred.get("kind") == "symptom":
        return f"fails with {pred['symptom']} on >= {pred['k']} of {len(pred['images'])}"
    return f"top-1 flips on >= {pred['k']} of {len(pred['images'])}" if pred.get("k") else None


def _reason(record: dict) -> str:
    """The first line of why a probe did not run or failed (a build error can run to dozens of lines)."""
    return shorten(str(record.get("reason") or "").splitlines()[0] if record.get("reason") else "", 160)


def _bundle_text(bundle: dict | None) -> str | None:
    """The reproducer's path and size, or why there is none."""
    if not bundle:
        return None
    if bundle.get("path"):
        return f"{bundle['path']} ({bundle['nodes_after']} of {bundle['nodes_before']} nodes)"
    return bundle.get("reason") or bundle.get("result")


def _named_text(named: dict | None) -> str | None:
    """Named mode's root node (on how many witnesses it is the root), that the marking made the disagreement
    vanish, or why named mode did not run."""
    if not named:
        return None
    if named.get("status") != ProbeStatus.OK:
        return f"{named.get('status')}: {_reason(named)}"
    if named.get("vanished"):
        return "vanished when every tensor is an output (fusion-dependent): read the kernel mode"
    if not named.get("root"):
        return "no node departs"
    return f"{named['root']} (root on {named['root_images']} of {len(named.get('per_image', []))})"


def bisection_table(records: list[str | Path]) -> pd.DataFrame:
    """One row per bisection: the pair, its predicate, the culprit steps, the builds it took, the record."""
    rows = []
    for path in records:
        r = read_json(path)
        c = parse_variant_id(r["a"])
        pred = r.get("predicate", {})
        rows.append({"opt": c["opt"], "device": c["device"], "against": r["b"], "status": r["status"],
                     "predicate": _flips_text(pred),
                     "result": r.get("result"), "culprits": ", ".join(r.get("culprits") or []) or None,
                     "builds": len({tuple(t["enabled"]) for t in r.get("trials", [])}) or None,
                     "reproducer": _bundle_text(r.get("bundle")),
                     "named_mode": _named_text(r.get("named")),
                     "reason": _reason(r),
                     "record": str(path)})
    return pd.DataFrame(rows)


def localisation_table(profiles: list[str | Path]) -> pd.DataFrame:
    """One row per probe: the pair, whether its predicate was confirmed, the root kernel and its ONNX node,
    how many witness images flipped, were masked before the logits, and the profile's path."""
    rows = []
    for path in profiles:
        p = read_json(path)
        c = parse_variant_id(p["a"])
        pred, conf = p.get("predicate", {}), p.get("confirmed") or {}
        rows.append({
            "mutant": c["mutant"], "opt": c["opt"], "device": c["device"], "against": p["b"], "status": p["status"],
            "predicate": _flips_text(pred) or (f"logits move on {len(pred['images'])} images"
                                               if pred.get("images") else None),
            "confirmed": conf.get("holds") if p["status"] == ProbeStatus.OK else None,
            "root_kernel": p.get("root_kernel"), "onnx_node": p.get("root_onnx_node"),
            "onnx_op": p.get("root_onnx_op_type"), "named_mode": _named_text(p.get("named")),
            "reproducer": _bundle_text(p.get("bundle")),
            "flipped": len(p.get("flipped", [])),
            "masked": len(p.get("masked", [])), "witnesses": p.get("images"),
            "replayed_on": p.get("replayed_on"),  # a device pair's: where the device's kernels ran
            "reason": _reason(p),
            "profile": str(path),
        })
    return pd.DataFrame(rows)


def localisation_markdown(profiles: list[str | Path], unprobed: list[str]) -> str:
    if not profiles and not unprobed:
        return ""
    from deltamut.compare.stage import markdown_table

    text = ("\n## Localisation\n\nWhere each selected mutant's effect starts (the root kernel: the first whose "
            "replay on the original's inputs departs beyond the noise, named by the ONNX node whose value it "
            "computes) and how far it travels: witness images flipped, and those where a later layer masks it "
            "before the logits (`localise:`; error growth plots in the report). `named_mode`: the first ONNX "
            "node whose output departs while its inputs do not, with every tensor an output of both builds, or "
            "that the marking made the disagreement vanish.\n\n")
    bisections = [p for p in profiles if Path(p).name == "bisect.json"]
    profiles = [p for p in profiles if Path(p).name != "bisect.json"]
    if profiles:
        table = localisation_table(profiles)
        text += markdown_table(table.drop(columns=[c for c in ("reason", "replayed_on") if not table[c].any()]))
    if bisections:
        text += ("\nWhich steps of an optimisation make its build flip labels against the reference: bisection "
                 "over the configuration's ordered steps, no-op steps skipped, interacting steps named together "
                 "(`localise.optimisations`).\n\n" + markdown_table(bisection_table(bisections)))
    if unprobed:
        text += f"\nNot probed (over `localise.max_probes`): {', '.join(unprobed)}\n"
    return text
