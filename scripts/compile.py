"""The imported Relax module -> graph-level module under one optimisation configuration's graph passes."""

from deltamut.compiler.stage import compile_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    compile_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), opt=sm.params.opt,
                  graph=sm.params.graph, timeout_s=sm.params.timeout_s, log=sm.log[0])
