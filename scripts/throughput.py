"""Images/s of one variant at batch B and at batch 1, measured in the same job (see deltamut.runner.throughput)."""

from deltamut.joblog import job_log
from deltamut.runner.throughput import ThroughputSettings, throughput_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    runner = sm.params.runner
    settings = ThroughputSettings(batch_size=sm.params.batch_size, warmup=int(runner["warmup"]),
                                  passes=int(runner["repeats"]), threads=sm.threads, timeout_s=sm.params.timeout_s)
    throughput_stage(inputs=dict(sm.input.items()), outputs=dict(sm.output.items()), model=sm.wildcards.model,
                     model_spec=sm.params.model, variant=sm.wildcards.variant, settings=settings, log=sm.log[0],
                     target=sm.params.target)
