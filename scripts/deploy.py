"""Build one mutant for one target."""

from deltamut.compiler.stage import deploy_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    deploy_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), mutant=sm.wildcards.mutant,
                 target_name=sm.wildcards.target, target=sm.params.target, opt=sm.wildcards.opt,
                 codegen=sm.params.codegen, timeout_s=sm.params.timeout_s, log=sm.log[0])
