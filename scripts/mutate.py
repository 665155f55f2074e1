"""Lower the graph module with one mutation applied; write the IR, its diff and a manifest."""

from deltamut.joblog import job_log
from deltamut.mutations.stage import mutate_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    mutate_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), mutant=sm.wildcards.mutant,
                 spec=sm.params.spec, opt=sm.wildcards.opt, lowering=sm.params.lowering,
                 graph_passes=sm.params.graph_passes, timeout_s=sm.params.timeout_s, log=sm.log[0])
