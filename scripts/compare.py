"""Compare every pair of one model's variants; write the tables, the kill matrix and a summary."""

from deltamut.compare.stage import compare_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    compare_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), model=sm.wildcards.model,
                  variants=sm.params.variants, pairs=sm.params.pairs, indexes=sm.params.indexes,
                  thresholds=sm.params.thresholds)
