"""The study's tables and summary across models."""

from deltamut.compare.stage import summarise_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    summarise_stage(list(sm.input), sm.output.csv, sm.output.parquet, sm.output.summary)
