# Latency verdicts: each comparison group's variants (deltamut.timing.groups) loaded side by side and timed in
# interleaved rounds, so that a drift of the machine's load moves both sides of a pair alike. The infer jobs
# only check outputs; this job is the one whose timings every `latency_verdict` comes from.


rule timing:
    input:
        unpack(timing_inputs),
    output:
        record=paths.TIMING,
    wildcard_constraints:
        group=TIMING_GROUP,
    params:
        members=lambda wc: timing_members(STUDY, wc.model, wc.group),
        model=lambda wc: STUDY.model_spec(wc.model),
        device=lambda wc: STUDY.device_settings(timing_device(wc)),
        target=lambda wc: config["targets"][STUDY.target_of(timing_device(wc))],
        runner=RUNNER,
        timing=config["timing"],
    # every core, like infer: nothing may run beside a timed call
    threads: RUN_THREADS
    resources:
        slurm_partition=lambda wc: timing_placement(wc).partition,
        gpu=lambda wc: timing_placement(wc).gpus,
        gpu_model=lambda wc: timing_placement(wc).gpu_model,
        runtime=lambda wc: timing_placement(wc).runtime,
        mem_mb=lambda wc: timing_placement(wc).mem_mb,
    log:
        paths.log("timing", "model", "group"),
    benchmark:
        paths.benchmark("timing", "model", "group")
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/timing.py"
