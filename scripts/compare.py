"""Compare every pair of one model's variants; write the tables, the kill matrix and a summary."""

from deltamut.compare.stage import compare_stage
from deltamut.joblog import job_log

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    compare_stage(sm.wildcards.model, sm.params.variants, sm.params.pairs, sm.params.indexes, sm.input.inputs,
                  sm.params.thresholds, dict(sm.output.items()))
