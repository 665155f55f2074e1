"""Which pairs a study localises: its `localise:` selection, as one probe per (optimisation, mutant, device)
and one bisection per selected (optimisation, device). Mutants and optimisations named up front are planned
with the study; findings selected by their pair's kind and verdict (`kinds`, `verdicts`, `variants`) are known
once compare has written the model's per-pair table (a checkpoint), and join them there.

A mutant probe traces both builds kernel by kernel in one process, so only devices whose code the job's own CPU
runs qualify (not boards over RPC, not GPUs); a device pair traces its baseline's build on the job's CPU and
replays the other device's kernels on that device, wherever it is; input-level mutants run the original's
library (nothing to trace), and a sweep's one-site mutants are chosen by its census after planning, so they
are not selected. Imports no TVM (planning).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from deltamut import paths
from deltamut.study import ORIGINAL, ModelRef
from deltamut.study.placement import is_host_cpu
from deltamut.study.refs import parse_variant_id, variant_id

#: The `localise:` keys that choose probes; the rest are the probes' settings (a job's params).
SELECTION = ("mutants", "optimisations", "kinds", "verdicts", "variants", "max_probes")


def _host_devices(study) -> list[str]:
    return [d for d in study.devices if is_host_cpu(study.devices[d], study.targets[study.target_of(d)])]


def selected(study, model: str) -> list[dict[str, str]]:
    """Every probe the selection names, in the study's order (before the budget)."""
    patterns = study.config.get("localise", {}).get("mutants", [])
    if not patterns:
        return []
    devices = _host_devices(study)
    out = []
    for opt in study.optimisations:
        for mutant in study.mutants(model, opt, expand=False):
            if mutant == ORIGINAL or study.is_input_mutant(mutant) or study.catalog.is_sweep(mutant):
                continue
            if not any(fnmatchcase(mutant, p) for p in patterns):
                continue
            out += [{"opt": opt, "mutant": mutant, "device": dev, "a": variant_id(opt, mutant, dev),
                     "b": variant_id(opt, ORIGINAL, dev)} for dev in devices]
    return out


def bisections(study, model: str) -> list[dict[str, str]]:
    """The compiler pairs (an optimisation's original build against the reference) whose configuration's steps
    the selection bisects (`localise.optimisations`), on host-CPU devices."""
    patterns = study.config.get("localise", {}).get("optimisations", [])
    if not patterns or ModelRef.parse(model).is_derived:
        return []
    return [{"opt": opt, "mutant": "", "device": dev, "a": variant_id(opt, ORIGINAL, dev),
             "b": study.reference(model)}
            for opt in study.optimisations if any(fnmatchcase(opt, p) for p in patterns)
            for dev in _host_devices(study)]


def selects_by_verdict(study) -> bool:
    """Whether the selection waits for compare's verdicts (`localise.kinds`)."""
    return bool(study.config.get("localise", {}).get("kinds"))


def found(study, model: str, per_pair: str | Path) -> list[dict[str, str]]:
    """The probes compare's findings select (`localise.kinds`, `verdicts`, `variants`), in the per-pair table's
    order: a mutant pair's mutant (not an input-level one: it runs the original's library), a compiler pair's
    optimisation (not for a derived model: bisection rebuilds from the model's own import), on host-CPU devices;
    a device pair's two builds where their targets differ and the baseline device is a host CPU (its build is
    traced; the other device's kernels are replayed where that device is: this CPU, a GPU, a board over RPC)."""
    import pandas as pd

    sel = study.config.get("localise", {})
    kinds, verdicts, patterns = sel.get("kinds", []), set(sel.get("verdicts", [])), sel.get("variants", ["*"])
    if not kinds:
        return []
    host = set(_host_devices(study))
    out = []
    for kind, a, b, verdict in pd.read_parquet(per_pair, columns=["kind", "a", "b", "verdict"]).itertuples(
            index=False):
        if kind not in kinds or verdict not in verdicts or not any(fnmatchcase(a, p) for p in patterns):
            continue
        c = parse_variant_id(a)
        if kind == "device":
            base = parse_variant_id(b)["device"]
            if base in host and _replayable(study, c["device"], base):
                out.append({"opt": c["opt"], "mutant": ORIGINAL, "device": c["device"], "baseline": base, "a": a,
                            "b": b})
        elif c["device"] not in host:
            continue
        elif kind == "mutant" and not study.is_input_mutant(c["mutant"]):
            out.append({"opt": c["opt"], "mutant": c["mutant"], "device": c["device"], "a": a, "b": b})
        elif kind == "compiler" and not ModelRef.parse(model).is_derived:
            out.append({"opt": c["opt"], "mutant": "", "device": c["device"], "a": a, "b": b})
    return out


def _replayable(study, device: str, baseline: str) -> bool:
    """Whether a device pair has two libraries (its targets differ) and its job, placed as the device's infer jobs
    are, also runs the baseline's: a board over RPC or a GPU leaves the job on a host like the baseline's, but a
    CPU device of another architecture puts it on a node where the baseline's library does not load."""
    targets = [study.targets[study.target_of(d)] for d in (device, baseline)]
    if targets[0] == targets[1]:
        return False
    if is_host_cpu(study.devices[device], targets[0]):
        arch = [str(t.get("mtriple") or "host").split("-")[0] for t in targets]
        return arch[0] == arch[1]
    return True


def probes(study, model: str, per_pair: str | Path | None = None) -> tuple[list[dict[str, str]],
                                                                            list[dict[str, str]]]:
    """The probes run (at most `localise.max_probes` a model: mutant profiles named up front first, then
    bisections, then the findings `per_pair` selects by verdict, each once) and those the budget leaves out."""
    chosen = selected(study, model) + bisections(study, model)
    if per_pair is not None:
        seen = {_key(p) for p in chosen}
        chosen += [p for p in found(study, model, per_pair) if _key(p) not in seen]
    budget = int(study.config.get("localise", {}).get("max_probes", 16))
    return chosen[:budget], chosen[budget:]


def _key(probe: dict[str, str]) -> tuple[str, ...]:
    return probe["opt"], probe["mutant"], probe["device"], probe.get("baseline", "")


def probe_path(model: str, probe: dict[str, str]) -> str:
    """A probe's record: a mutant's profile, a device pair's, or a bisection's result."""
    where = {"model": model, "opt": probe["opt"], "device": probe["device"]}
    if probe.get("baseline"):
        return paths.fill(paths.DEVICE_PROFILE, mutant=probe["mutant"], baseline=probe["baseline"], **where)
    if probe["mutant"]:
        return paths.fill(paths.PROFILE, mutant=probe["mutant"], **where)
    return paths.fill(paths.BISECT, **where)


def probe_paths(study) -> list[str]:
    """Every probe's record of the study, for the summary."""
    return [probe_path(m, p) for m in study.models for p in probes(study, m)[0]]


def probe_of(study, model: str, opt: str, mutant: str, device: str) -> dict[str, Any]:
    """One probe's pair (`a` the mutant, `b` its original, as in the mutant pairs), what it rebuilds, and the
    files its job reads: both libraries and lowered modules, the mutant's manifest, the model's ONNX (to name
    kernels, mark tensors and cut reproducers; None when TVM imported a torch.export program), the images and
    the per-image table."""
    target = study.target_of(device)
    exported = study.export_settings(model)["exporter"] == "torch.export"
    return {
        "a": variant_id(opt, mutant, device), "b": variant_id(opt, ORIGINAL, device),
        "rebuild": rebuild_of(study, opt, mutant, device),
        "mutant_lib": study.artifact(paths.LIB, model, opt, mutant, target=target),
        "mutant_info": study.artifact(paths.DEPLOY, model, opt, mutant, target=target),
        "manifest": study.artifact(paths.MANIFEST, model, opt, mutant),
        "mutant_module": study.artifact(paths.MODULE, model, opt, mutant),
        "original_module": study.artifact(paths.MODULE, model, opt, ORIGINAL),
        "original_lib": study.artifact(paths.LIB, model, opt, ORIGINAL, target=target),
        "onnx": None if exported else paths.fill(paths.ONNX, model=model),
        "inputs": study.inputs_path(model, shard=study.shards[0]),
        "per_image": paths.table("per_image", "parquet", model),
    }


def rebuild_of(study, opt: str, mutant: str, device: str) -> dict[str, Any]:
    """What a mutant probe rebuilds from the model's ONNX file: named mode (deltamut.localise.named) the whole
    marked model, a reproducer (deltamut.localise.bundle) windows of it; under the probe's configuration and
    target, with the mutation's level and, for a graph- or model-level mutant, its entry (named mode applies
    it again)."""
    out = {"optimisation": study.optimisation(opt), "target": study.targets[study.target_of(device)],
           "level": study.catalog.level(mutant)}
    if study.mutates_graph(mutant):
        out["mutation"] = study.mutation(mutant)
    return out


def device_probe_of(study, model: str, opt: str, device: str, baseline: str) -> dict[str, Any]:
    """A device pair's probe (`a` the device's original build, `b` the baseline device's, as in the device
    pairs), where the device's kernels are replayed (`replay_on`: its backend spec without the library, as its
    infer jobs reach it), and the files its job reads: both libraries and deploy records (the baseline's is the
    one traced and named, the device's replayed), the ONNX file (to name kernels), the images and the per-image
    table."""
    from deltamut.runner.stage import tvm_backend

    exported = study.export_settings(model)["exporter"] == "torch.export"
    lib = {d: study.artifact(paths.LIB, model, opt, ORIGINAL, target=study.target_of(d)) for d in (device, baseline)}
    spec = tvm_backend(lib[device], study.targets[study.target_of(device)], study.device_settings(device))
    return {
        "a": variant_id(opt, ORIGINAL, device), "b": variant_id(opt, ORIGINAL, baseline),
        "replay_on": {k: v for k, v in spec.items() if k not in ("kind", "lib")},
        "mutant_lib": lib[device], "original_lib": lib[baseline],
        "mutant_info": study.artifact(paths.DEPLOY, model, opt, ORIGINAL, target=study.target_of(device)),
        "onnx": None if exported else paths.fill(paths.ONNX, model=model),
        "inputs": study.inputs_path(model, shard=study.shards[0]),
        "per_image": paths.table("per_image", "parquet", model),
    }


def bisection_of(study, model: str, opt: str, device: str) -> dict[str, Any]:
    """One bisection's pair (`a` the optimisation's build, `b` the reference) and the files its job reads: the
    imported graph every build starts from, the model's ONNX (to cut a reproducer from; None when TVM imported a
    torch.export program), the images, the per-image table and the reference's results (every shard's: a drift
    is judged against its logits); and what it builds."""
    from deltamut.fsutil import as_files

    exported = study.export_settings(model)["exporter"] == "torch.export"
    reference = study.reference(model)
    return {
        "a": variant_id(opt, ORIGINAL, device), "b": reference,
        "reference": as_files(study.result_path(paths.REFERENCE, model=model, framework=reference)),
        "imported": paths.fill(paths.IMPORTED, model=model),
        "onnx": None if exported else paths.fill(paths.ONNX, model=model),
        "inputs": study.inputs_path(model, shard=study.shards[0]),
        "per_image": paths.table("per_image", "parquet", model),
        "spec": study.optimisation(opt), "target": study.targets[study.target_of(device)],
    }
