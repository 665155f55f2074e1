"""Export one model with torch.export (a conversion that reaches TVM without ONNX)."""

from deltamut.export import export_program
from deltamut.export.stage import export_stage
from deltamut.joblog import job_log
from deltamut.models import load_model

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    info = load_model(sm.params.name, sm.params.model)
    export_stage(lambda: export_program(info, sm.output[0]), sm.output[0], conversion=True)
