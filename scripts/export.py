"""Export one model to ONNX (the primary export, or a conversion)."""

from deltamut.export import export_model
from deltamut.export.stage import export_stage
from deltamut.joblog import job_log
from deltamut.models import load_model

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    info = load_model(sm.params.name, sm.params.model)
    export_stage(lambda: export_model(info, sm.output[0], opset=int(sm.params.export["opset"]),
                                      exporter=sm.params.export["exporter"]), sm.output[0], sm.params.conversion)
