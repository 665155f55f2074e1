"""ONNX -> graph-level Relax module under one optimisation configuration."""

from deltamut.compiler.stage import compile_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    compile_stage(sm.input[0], sm.params.opt, sm.params.graph, sm.output[0], sm.params.timeout_s, sm.log[0])
