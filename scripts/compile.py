"""The imported Relax module -> graph-level module under one optimisation configuration's graph passes."""

from deltamut.compiler.stage import compile_stage
from deltamut.fsutil import copy_file
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    if sm.params.reuse:  # an ablated configuration with its base's graph passes: the same module
        copy_file(sm.input[0], sm.output[0])
    else:
        compile_stage(sm.input[0], sm.params.opt, sm.params.graph, sm.output[0], sm.params.timeout_s, sm.log[0])
