"""Entry points of the import_graph, compile and deploy rules; each does its TVM work in an isolated child
process, and writes a failure record in place of an artifact it cannot make."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deltamut.failure import read_failure, write_failure
from deltamut.fsutil import read_json, write_json
from deltamut.isolation import call_isolated
from deltamut.outcome import Stage, Status


def _import_worker(source: str, out: str) -> dict:
    from deltamut.compiler.importer import import_graph
    from deltamut.compiler.serialize import save_module

    save_module(import_graph(source), out)
    return {}


def import_graph_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], timeout_s: float,
                       log: str | Path) -> bool:
    """ONNX (or a torch.export `.pt2`, `inputs["source"]`) -> the graph-level Relax module as the frontend imports
    it, before any optimisation (`outputs["imported"]`): what every configuration's graph passes and every
    graph-level mutant start from. A failure record if it cannot."""
    source, out = inputs["source"], outputs["imported"]
    upstream = read_failure(source)
    if upstream is not None:  # a conversion its exporter could not make
        write_failure(out, Stage.COMPILE, {"status": Status.SKIPPED, "reason": "export failed", "upstream": upstream})
        return False
    res = call_isolated(_import_worker, {"source": str(source), "out": str(out)}, timeout_s, log)
    if not res.ok:
        write_failure(out, Stage.COMPILE, res.as_record())
    return res.ok


def _graph_worker(imported: str, opt_name: str, opt_spec: dict, out: str) -> dict:
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.passes import optimise_graph
    from deltamut.compiler.serialize import load_module, save_module

    opt = OptConfig.from_dict(opt_name, opt_spec)
    save_module(optimise_graph(load_module(imported), opt), out)
    return {"passes": list(opt.passes)}


def compile_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], opt: str, graph: dict[str, Any],
                  timeout_s: float, log: str | Path) -> bool:
    """The imported module -> the graph-level Relax module under one optimisation's graph passes (`graph`: its
    slice of the configuration); a failure record if it cannot (or if the import failed)."""
    imported, out = inputs["imported"], outputs["graph"]
    upstream = read_failure(imported)
    if upstream is not None:
        write_failure(out, Stage.COMPILE, {"status": Status.SKIPPED, "reason": "import failed", "upstream": upstream})
        return False
    res = call_isolated(_graph_worker, {"imported": str(imported), "opt_name": opt, "opt_spec": graph,
                                        "out": str(out)}, timeout_s, log)
    if not res.ok:
        write_failure(out, Stage.COMPILE, res.as_record())
    return res.ok


def _deploy_worker(module: str, target_spec: dict, opt_name: str, codegen: dict, out: str) -> dict:
    from deltamut.compiler.build import build_library
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.serialize import load_module

    return build_library(load_module(module), target_spec, OptConfig.from_dict(opt_name, codegen), out)


def deploy_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], mutant: str, target_name: str,
                 target: dict[str, Any], opt: str, codegen: dict[str, Any], timeout_s: float,
                 log: str | Path) -> dict[str, Any]:
    """Build one library (`outputs["lib"]`) for one target from a lowered module (`inputs["module"]`, with its
    `manifest`); equivalent or failed mutants are recorded, not built, and so is a mutant whose module
    equals another mutant's (from `inputs["mutant_index"]`, absent for the original)."""
    manifest = read_json(inputs["manifest"])
    twin = read_json(inputs["mutant_index"])[mutant]["duplicate_of"] if inputs.get("mutant_index") else None
    info: dict[str, Any] = {"target_name": target_name, "target_spec": target, "opt": opt, "codegen": codegen}
    upstream = read_failure(inputs["module"])
    if upstream is not None:
        info.update(status=Status.SKIPPED.value, reason=f"{upstream['stage']} failed", upstream=upstream)
    elif manifest.get("status") == Status.EQUIVALENT:
        info.update(status=Status.EQUIVALENT.value, reason=manifest.get("equivalent_to", "original"))
    elif twin:  # by IR or by semantics (mutations.equivalence)
        info.update(status=Status.EQUIVALENT.value, reason=f"mutant {twin}", duplicate_of=twin)
    else:
        res = call_isolated(_deploy_worker, {"module": str(inputs["module"]), "target_spec": target, "opt_name": opt,
                                             "codegen": codegen, "out": str(outputs["lib"])}, timeout_s, log)
        info.update(status=res.status, stage=Stage.DEPLOY.value, **(res.value or {}))
        if not res.ok:
            info.update(res.as_record())
    if info["status"] != Status.OK:
        write_failure(outputs["lib"], Stage.DEPLOY, {k: v for k, v in info.items() if k != "upstream"})
    write_json(outputs["info"], info)
    return info
