"""Entry points of the mutate, mutant_index and census rules: graph module -> lowered mutant, its IR text, a
diff and a manifest; the mutants that duplicate each other; a sweep's sites.

Equivalent mutants are caught here, on the IR (`structural_equal` against the original, and equality of the
canonical forms), because two compiles of the same module give different binaries: a mutant equal to the
original is recorded as `equivalent` and never built or run.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deltamut.failure import read_failure, write_failure
from deltamut.fsutil import read_json, write_json, write_text
from deltamut.isolation import call_isolated
from deltamut.mutations.engine import ir_diff, is_equivalent, semantic_key, structural_key
from deltamut.mutations.equivalence import duplicates
from deltamut.outcome import Stage, Status


def _mutate_worker(graph: str, spec: dict, opt_name: str, lowering: dict, out_module: str, out_ir: str,
                   original_module: str | None, imported: str | None = None, graph_passes: dict | None = None) -> dict:
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
        module, manifest = lower(graph_mod, opt), {"operator": "identity", "level": "none", "sites": []}
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
    manifest["structural_hash"] = structural_key(module)
    manifest["semantic_hash"] = semantic_key(module)
    if original_module is not None and is_equivalent(original(), module):
        manifest.update(status=Status.EQUIVALENT.value, equivalent_to="original")
    elif original_module is not None and semantic_key(original()) == manifest["semantic_hash"]:
        manifest.update(status=Status.EQUIVALENT.value, equivalent_to="original (after simplification)")
    manifest.setdefault("status", Status.OK.value)
    save_module(module, out_module)
    write_text(out_ir, module.script(show_meta=False))
    manifest["mutate_s"] = round(time.perf_counter() - started, 3)  # the work, for bench/pipeline_overhead.py
    return manifest


def mutate_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], mutant: str, spec: dict[str, Any],
                 opt: str, lowering: dict[str, Any], graph_passes: dict[str, Any], timeout_s: float,
                 log: str | Path) -> dict[str, Any]:
    """Lower one mutant of the configuration's graph (`inputs["graph"]`); graph- and model-level operators start
    from the graph as imported (`inputs["imported"]`) and then run the configuration's `graph_passes`. Every
    mutant but the original is diffed and checked against the original's `original_module` and `original_ir`.
    Writes `outputs` module, ir, diff and manifest (a failure record for the module if the tool fails)."""
    base = {"mutant": mutant, "spec": spec, "opt": opt}
    upstream = read_failure(inputs["graph"])
    if upstream is not None:
        manifest = {**base, "status": Status.SKIPPED.value, "reason": f"{upstream['stage']} failed",
                    "upstream": upstream}
    else:
        res = call_isolated(_mutate_worker,
                            {"graph": str(inputs["graph"]), "spec": spec, "opt_name": opt, "lowering": lowering,
                             "out_module": str(outputs["module"]), "out_ir": str(outputs["ir"]),
                             "original_module": inputs.get("original_module"), "imported": inputs.get("imported"),
                             "graph_passes": graph_passes}, timeout_s, log)
        manifest = {**base, **res.value} if res.ok else {**base, "stage": Stage.MUTATE.value, **res.as_record()}
    if manifest["status"] in (Status.OK, Status.EQUIVALENT):
        before = Path(inputs["original_ir"]).read_text() if inputs.get("original_ir") else None
        write_text(outputs["diff"], "" if before is None else ir_diff(
            before, Path(outputs["ir"]).read_text(), f"{mutant}/ir.txt", fromfile="original/ir.txt"))
    else:
        write_failure(outputs["module"], Stage.MUTATE, manifest)
        for key in ("ir", "diff"):
            write_text(outputs[key], f"# no IR: {manifest.get('reason') or manifest.get('error')}\n")
    write_json(outputs["manifest"], manifest)
    return manifest


def mutant_index_stage(*, inputs: Mapping[str, Any], outputs: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Write the (model, optimisation)'s mutant index: hashes, status and twin of each mutant whose manifest
    `inputs["manifests"]` lists (`results/.../{mutant}/manifest.json`)."""
    loaded = {Path(p).parent.name: read_json(p) for p in inputs["manifests"]}
    twins = duplicates(loaded)
    index = {name: {"status": m.get("status"), "structural_hash": m.get("structural_hash"),
                    "semantic_hash": m.get("semantic_hash"),
                    "duplicate_of": twins[name][0] if name in twins else None,
                    "duplicate_by": twins[name][1] if name in twins else None} for name, m in sorted(loaded.items())}
    write_json(outputs["index"], index)
    return index


def _census_worker(module: str, spec: dict) -> dict:
    from deltamut.compiler.serialize import load_module
    from deltamut.mutations.sweep import census

    return census(load_module(module), spec)


def census_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], entry: str, spec: dict[str, Any],
                 timeout_s: float, log: str | Path) -> dict[str, Any]:
    """Count a sweep's candidate sites in `inputs["module"]` and write which it chooses (`mutations.sweep`) to
    `outputs["census"]`. When the module is a failure record or the census fails, the file says so and chooses no
    site: the sweep adds no mutant, and no failure of the tool becomes a finding."""
    module, out = inputs["module"], outputs["census"]
    upstream = read_failure(module)
    if upstream is not None:
        record = {"entry": entry, "status": Status.SKIPPED.value, "reason": f"{upstream['stage']} failed",
                  "chosen": []}
    else:
        res = call_isolated(_census_worker, {"module": str(module), "spec": spec},
                            timeout_s, log)
        record = {"entry": entry, "status": Status.OK.value, **res.value} if res.ok else \
            {"entry": entry, "stage": Stage.MUTATE.value, **res.as_record(), "chosen": []}
    write_json(out, record)
    return record
