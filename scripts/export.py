"""Export one model to ONNX (the primary export, a conversion, or a batched build)."""

from deltamut.export.stage import export_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    export_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), name=sm.params.name,
                 model=sm.params.model, export=sm.params.export, conversion=sm.params.conversion)
