"""Time one comparison group's variants together, in interleaved rounds."""

from deltamut.joblog import job_log
from deltamut.timing.stage import timing_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    timing_stage(inputs=dict(sm.input.items()), output=sm.output.record, model=sm.wildcards.model,
                 group=sm.wildcards.group, members=sm.params.members, model_spec=sm.params.model,
                 device_spec=sm.params.device, target_spec=sm.params.target, runner=sm.params.runner,
                 timing=sm.params.timing, log=sm.log[0], threads=sm.threads)
