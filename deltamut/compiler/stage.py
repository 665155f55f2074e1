"""Entry points of the compile and deploy stages; each does its TVM work in an isolated child process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deltamut.failure import read_failure, write_failure
from deltamut.fsutil import write_json
from deltamut.isolation import call_isolated


def _import_worker(source: str, out: str) -> dict:
    from deltamut.compiler.importer import import_graph
    from deltamut.compiler.serialize import save_module

    save_module(import_graph(source), out)
    return {}


def import_stage(source: str | Path, out: str | Path, timeout_s: float, log: str | Path) -> bool:
    """ONNX (or a torch.export `.pt2`) -> the graph-level Relax module as the frontend imports it, before any
    optimisation: what every configuration's graph passes and every graph-level mutant start from. A failure
    record if it cannot."""
    upstream = read_failure(source)
    if upstream is not None:  # a conversion its exporter could not make
        write_failure(out, "compile", {"status": "skipped", "reason": "export failed", "upstream": upstream})
        return False
    res = call_isolated("deltamut.compiler.stage:_import_worker", {"source": str(source), "out": str(out)},
                        timeout_s, log)
    if not res.ok:
        write_failure(out, "compile", res.as_record())
    return res.ok


def _graph_worker(imported: str, opt_name: str, opt_spec: dict, out: str) -> dict:
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.passes import optimise_graph
    from deltamut.compiler.serialize import load_module, save_module

    opt = OptConfig.from_dict(opt_name, opt_spec)
    save_module(optimise_graph(load_module(imported), opt), out)
    return {"passes": list(opt.passes)}


def compile_stage(imported: str | Path, opt_name: str, opt_spec: dict[str, Any], out: str | Path,
                  timeout_s: float, log: str | Path) -> bool:
    """The imported module -> the graph-level Relax module under one optimisation's graph passes; a failure
    record if it cannot (or if the import failed)."""
    upstream = read_failure(imported)
    if upstream is not None:
        write_failure(out, "compile", {"status": "skipped", "reason": "import failed", "upstream": upstream})
        return False
    res = call_isolated("deltamut.compiler.stage:_graph_worker",
                        {"imported": str(imported), "opt_name": opt_name, "opt_spec": opt_spec, "out": str(out)},
                        timeout_s, log)
    if not res.ok:
        write_failure(out, "compile", res.as_record())
    return res.ok


def _deploy_worker(module: str, target_spec: dict, opt_name: str, codegen: dict, out: str) -> dict:
    from deltamut.compiler.build import build_library
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.serialize import load_module

    return build_library(load_module(module), target_spec, OptConfig.from_dict(opt_name, codegen), out)


def deploy_stage(module: str | Path, manifest: dict[str, Any], target_name: str, target_spec: dict[str, Any],
                 opt_name: str, codegen: dict[str, Any], out_lib: str | Path, out_info: str | Path,
                 timeout_s: float, log: str | Path, duplicate_of: str | None = None) -> dict[str, Any]:
    """Build one library for one target; equivalent or failed mutants are recorded, not built, and so is a
    mutant whose module equals another mutant's (`duplicate_of`, from the mutant index)."""
    info: dict[str, Any] = {"target_name": target_name, "target_spec": target_spec, "opt": opt_name,
                            "codegen": codegen}
    upstream = read_failure(module)
    if upstream is not None:
        info.update(status="skipped", reason=f"{upstream['stage']} failed", upstream=upstream)
    elif manifest.get("status") == "equivalent":
        info.update(status="equivalent", reason=manifest.get("equivalent_to", "original"))
    elif duplicate_of:
        info.update(status="equivalent", reason=f"mutant {duplicate_of}", duplicate_of=duplicate_of)
    else:
        res = call_isolated("deltamut.compiler.stage:_deploy_worker",
                            {"module": str(module), "target_spec": target_spec, "opt_name": opt_name,
                             "codegen": codegen, "out": str(out_lib)}, timeout_s, log)
        info.update(status="ok" if res.ok else res.status, stage="deploy", **(res.value or {}))
        if not res.ok:
            info.update(res.as_record())
    if info["status"] != "ok":
        write_failure(out_lib, "deploy", {k: v for k, v in info.items() if k != "upstream"})
    write_json(out_info, info)
    return info
