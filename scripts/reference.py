"""Reference outputs of one framework (PyTorch eager or ONNX Runtime) on every image."""

from deltamut.joblog import job_log
from deltamut.runner.stage import reference_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    reference_stage(sm.wildcards.framework, sm.wildcards.model, sm.params.model, sm.input.onnx, sm.input.inputs,
                    sm.params.runner, sm.output[0], sm.log[0], threads=sm.threads)
