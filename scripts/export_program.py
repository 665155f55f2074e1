"""Export one model with torch.export (a conversion that reaches TVM without ONNX)."""

from deltamut.export.stage import export_program_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    export_program_stage(outputs=dict(sm.output.items()), name=sm.params.name, model=sm.params.model)
