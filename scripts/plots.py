"""Draw one model's report figures."""

from deltamut.joblog import job_log
from deltamut.report.stage import plots_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    plots_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), model=sm.wildcards.model,
                variants=sm.params.variants, reference=sm.params.reference)
