"""Build one mutant for one target."""

from deltamut.compiler.stage import deploy_stage
from deltamut.fsutil import read_json
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    index = sm.input.get("mutant_index")  # none for the original
    twin = read_json(index)[sm.wildcards.mutant]["duplicate_of"] if index else None  # by IR or by semantics
    deploy_stage(sm.input.module, read_json(sm.input.manifest), sm.wildcards.target, sm.params.target,
                 sm.wildcards.opt, sm.params.codegen, sm.output.lib, sm.output.info, sm.params.timeout_s, sm.log[0],
                 duplicate_of=twin)
