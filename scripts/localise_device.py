"""A device pair read kernel by kernel (deltamut.localise)."""

from deltamut.joblog import job_log
from deltamut.localise.stage import device_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    device_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), pair=sm.params.pair,
                 device=sm.params.device, settings=sm.params.settings, log=sm.log[0])
