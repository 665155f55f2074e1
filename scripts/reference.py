"""Reference outputs of one framework (PyTorch eager or ONNX Runtime) on every image."""

from deltamut.joblog import job_log
from deltamut.runner.stage import reference_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    reference_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), framework=sm.wildcards.framework,
                    model=sm.wildcards.model, model_spec=sm.params.model, runner=sm.params.runner, log=sm.log[0],
                    threads=sm.threads)
