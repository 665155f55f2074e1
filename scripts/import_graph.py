"""ONNX (or a torch.export program) -> the Relax module as TVM's frontend imports it."""

from deltamut.compiler.stage import import_graph_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    import_graph_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), timeout_s=sm.params.timeout_s,
                       log=sm.log[0])
