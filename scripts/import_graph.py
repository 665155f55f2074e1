"""ONNX (or a torch.export program) -> the Relax module as TVM's frontend imports it."""

from deltamut.compiler.stage import import_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    import_stage(sm.input[0], sm.output[0], sm.params.timeout_s, sm.log[0])
