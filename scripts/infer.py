"""Run every image through one library on one device."""

from deltamut.joblog import job_log
from deltamut.runner.stage import infer_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    w = sm.wildcards
    infer_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), device=w.device,
                device_spec=sm.params.device, target_spec=sm.params.target, runner=sm.params.runner,
                variant={"model": w.model, "opt": w.opt, "mutant": w.mutant}, log=sm.log[0], threads=sm.threads)
