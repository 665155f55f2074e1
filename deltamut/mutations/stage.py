"""Entry point of the mutate stage: graph module -> lowered mutant, its IR text, a diff and a manifest.

Equivalent mutants are caught here, on the IR (`structural_equal` against the original), because two
compiles of the same module give different binaries: a mutant equal to the original is recorded as
`equivalent` and never built or run.
"""

from __future__ import annotations

import difflib
import functools
import time
from pathlib import Path
from typing import Any

from deltamut.failure import read_failure, write_failure
from deltamut.fsutil import write_json, write_text
from deltamut.isolation import call_isolated


def _mutate_worker(graph: str, spec: dict, opt_name: str, lowering: dict, out_module: str, out_ir: str,
                   original_module: str | None, imported: str | None = None, graph_passes: dict | None = None) -> dict:
    import tvm_ffi

    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.passes import lower, optimise_graph
    from deltamut.compiler.serialize import load_module, save_module

    opt = OptConfig.from_dict(opt_name, {**(graph_passes or {}), **lowering})
    started = time.perf_counter()
    # Graph- and model-level operators act on the graph as the frontend imported it, before the configuration's
    # graph passes (which then run on the mutant), as MutateNN's did: a pass such as DecomposeOpsForInference
    # would otherwise have removed the batch-norm layers they name.
    graph_mod = load_module(imported if imported else graph)

    @functools.cache
    def original():
        """The original's lowered module, read once (26 MB for Lite0): kernel mutants start from it and
        every mutant is checked against it. Mutations copy before they change a module."""
        return load_module(original_module)

    if spec.get("operator") == "identity":
        module, manifest = lower(graph_mod, opt), {"operator": "identity", "level": "identity", "sites": []}
    else:
        from deltamut.mutations import mutate

        def lower_once(mod):
            # Kernel-level operators mutate the lowered *unmutated* graph: that is the original's module,
            # which the original's job already lowered and saved; loading it skips a second lowering.
            if mod is graph_mod and original_module is not None and imported is None:
                return original()
            return lower(optimise_graph(mod, opt) if imported else mod, opt)

        m = mutate(graph_mod, spec, lower_once)
        module, manifest = m.module, dict(m.manifest)
    from deltamut.mutations import semantic_key, structural_key

    manifest["structural_hash"] = structural_key(module)
    manifest["semantic_hash"] = semantic_key(module)
    if original_module is not None and tvm_ffi.structural_equal(original(), module):
        manifest["status"] = "equivalent"
        manifest["equivalent_to"] = "original"
    elif original_module is not None and semantic_key(original()) == manifest["semantic_hash"]:
        manifest["status"] = "equivalent"
        manifest["equivalent_to"] = "original (after simplification)"
    manifest.setdefault("status", "ok")
    save_module(module, out_module)
    write_text(out_ir, module.script(show_meta=False))
    manifest["mutate_s"] = round(time.perf_counter() - started, 3)  # the work, for bench/pipeline_overhead.py
    return manifest


def mutate_stage(graph: str | Path, mutant: str, spec: dict[str, Any], opt_name: str, lowering: dict[str, Any],
                 out_module: str | Path, out_ir: str | Path, out_diff: str | Path, out_manifest: str | Path,
                 original: dict[str, str] | None, timeout_s: float, log: str | Path,
                 imported: str | Path | None = None, graph_passes: dict[str, Any] | None = None) -> dict[str, Any]:
    """`original` holds the paths of the original's `module` and `ir` (None for the original itself).
    `imported` and `graph_passes`: for graph- and model-level operators, the module as imported and the
    configuration's graph passes, which run after the mutation."""
    base = {"mutant": mutant, "spec": spec, "opt": opt_name}
    upstream = read_failure(graph)
    if upstream is not None:
        manifest = {**base, "status": "skipped", "reason": f"{upstream['stage']} failed", "upstream": upstream}
    else:
        res = call_isolated("deltamut.mutations.stage:_mutate_worker",
                            {"graph": str(graph), "spec": spec, "opt_name": opt_name, "lowering": lowering,
                             "out_module": str(out_module), "out_ir": str(out_ir),
                             "original_module": original["module"] if original else None,
                             "imported": str(imported) if imported else None, "graph_passes": graph_passes},
                            timeout_s, log)
        manifest = {**base, **res.value} if res.ok else {**base, "stage": "mutate", **res.as_record()}
    if manifest["status"] in ("ok", "equivalent"):
        before = Path(original["ir"]).read_text() if original else ""
        after = Path(out_ir).read_text()
        write_text(out_diff, "".join(difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True),
            fromfile="original/ir.txt", tofile=f"{mutant}/ir.txt")) if original else "")
    else:
        write_failure(out_module, "mutate", manifest)
        for path in (out_ir, out_diff):
            write_text(path, f"# no IR: {manifest.get('reason') or manifest.get('error')}\n")
    write_json(out_manifest, manifest)
    return manifest


def reuse_stage(source: dict[str, str], opt_name: str, out_module: str | Path, out_ir: str | Path,
                out_diff: str | Path, out_manifest: str | Path) -> dict[str, Any]:
    """Copy another configuration's lowered original (`source`: its module, ir and manifest paths) instead
    of lowering the same graph with the same settings again; the manifest says where it came from."""
    from deltamut.fsutil import copy_file, read_json

    copy_file(source["module"], out_module)
    copy_file(source["ir"], out_ir)
    write_text(out_diff, "")
    manifest = {**read_json(source["manifest"]), "opt": opt_name, "reused_from": str(Path(source["manifest"]).parent)}
    write_json(out_manifest, manifest)
    return manifest


def _census_worker(module: str, spec: dict) -> dict:
    from deltamut.compiler.serialize import load_module
    from deltamut.mutations.sweep import census

    return census(load_module(module), spec)


def census_stage(module: str | Path, entry: str, spec: dict[str, Any], out: str | Path, timeout_s: float,
                 log: str | Path) -> dict[str, Any]:
    """Count a sweep's candidate sites in `module` and write which it chooses (`mutations.sweep`). When the
    module is a failure record or the census fails, the file says so and chooses no site: the sweep adds no
    mutant, and no failure of the tool becomes a finding."""
    upstream = read_failure(module)
    if upstream is not None:
        record = {"entry": entry, "status": "skipped", "reason": f"{upstream['stage']} failed", "chosen": []}
    else:
        res = call_isolated("deltamut.mutations.stage:_census_worker", {"module": str(module), "spec": spec},
                            timeout_s, log)
        record = {"entry": entry, "status": "ok", **res.value} if res.ok else \
            {"entry": entry, "stage": "mutate", **res.as_record(), "chosen": []}
    write_json(out, record)
    return record
