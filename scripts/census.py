"""Count a sweep's candidate sites and choose the ones that get a mutant each."""

from deltamut.joblog import job_log
from deltamut.mutations.stage import census_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    census_stage(sm.input[0], sm.wildcards.entry, sm.params.spec, sm.output[0], sm.params.timeout_s, sm.log[0])
