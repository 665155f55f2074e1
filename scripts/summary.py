"""The study's tables and summary across models."""

from deltamut.compare.stage import summary_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    summary_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), unprobed=sm.params.unprobed)
