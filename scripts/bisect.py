"""Which steps of an optimisation make its build flip labels (deltamut.localise.bisect)."""

from deltamut.joblog import job_log
from deltamut.localise.bisect_stage import bisect_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    bisect_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), pair=sm.params.pair,
                 spec=sm.params.spec, target=sm.params.target, settings=sm.params.settings, log=sm.log[0])
