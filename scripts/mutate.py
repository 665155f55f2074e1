"""Lower the graph module with one mutation applied; write the IR, its diff and a manifest."""

from deltamut.joblog import job_log
from deltamut.mutations.stage import mutate_stage, reuse_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    reuse = sm.input.get("reuse_module")
    if reuse:  # the original of an ablated configuration whose lowering is its base's
        reuse_stage({k: sm.input.get(f"reuse_{k}") for k in ("module", "ir", "manifest")}, sm.wildcards.opt,
                    sm.output.module, sm.output.ir, sm.output.diff, sm.output.manifest)
    else:
        original = ({"module": sm.input.original_module, "ir": sm.input.original_ir}
                    if "original_module" in sm.input.keys() else None)  # noqa: SIM118 (Namedlist: `in` tests values)
        mutate_stage(sm.input.graph, sm.wildcards.mutant, sm.params.spec, sm.wildcards.opt, sm.params.lowering,
                     sm.output.module, sm.output.ir, sm.output.diff, sm.output.manifest, original,
                     sm.params.timeout_s, sm.log[0], imported=sm.input.get("imported"),
                     graph_passes=sm.params.graph_passes)
