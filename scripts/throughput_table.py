"""Gather a model's throughput records into a table and a note that says they are not batch-1 latency."""

from deltamut.joblog import job_log
from deltamut.runner.throughput import throughput_table_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    throughput_table_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), model=sm.wildcards.model)
