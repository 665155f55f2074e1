"""Count a sweep's candidate sites and choose the ones that get a mutant each."""

from deltamut.joblog import job_log
from deltamut.mutations.stage import census_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    census_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), entry=sm.wildcards.entry,
                 spec=sm.params.spec, timeout_s=sm.params.timeout_s, log=sm.log[0])
