"""Run every image through one library on one device."""

from deltamut.fsutil import read_json
from deltamut.joblog import job_log
from deltamut.runner.stage import infer_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    w = sm.wildcards
    infer_stage(sm.input.lib, read_json(sm.input.info), w.device, sm.params.device, sm.params.target,
                sm.input.inputs, sm.params.runner, {"model": w.model, "opt": w.opt, "mutant": w.mutant},
                sm.output[0], sm.log[0], threads=sm.threads)
