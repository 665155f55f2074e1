"""Export one model with torch.export (a conversion that reaches TVM without ONNX)."""

from deltamut.export import export_program
from deltamut.joblog import job_log
from deltamut.models import load_model

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    export_program(load_model(sm.params.name, sm.params.model), sm.output[0])
