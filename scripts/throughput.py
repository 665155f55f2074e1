"""Images/s of one variant at batch B and at batch 1, measured in the same job (see deltamut.runner.throughput)."""

from deltamut.joblog import job_log
from deltamut.runner.throughput import ThroughputSettings, throughput_stage

sm = snakemake  # noqa: F821
with job_log(sm.log[0]):
    runner = sm.params.runner
    settings = ThroughputSettings(batch_size=sm.params.batch_size, warmup=int(runner.get("warmup", 2)),
                                  passes=int(runner.get("repeats", 5)), threads=sm.threads,
                                  timeout_s=sm.params.timeout_s)
    throughput_stage(sm.wildcards.model, sm.params.model, sm.wildcards.variant, sm.input.inputs, settings,
                     sm.output[0], sm.log[0], opt_spec=sm.params.opt, onnx_batch1=sm.input.onnx or None,
                     opset=int(sm.params.export.get("opset", 18)), exporter=sm.params.export.get("exporter", "dynamo"),
                     target_spec=sm.params.target)
