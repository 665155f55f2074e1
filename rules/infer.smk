rule infer:
    input:
        unpack(deploy_inputs),
    output:
        outputs=paths.OUTPUTS,
    params:
        device=lambda wc: STUDY.device_settings(wc.device),
        target=lambda wc: config["targets"][STUDY.target_of(wc.device)],
        runner=RUNNER,
    threads: RUN_THREADS
    # Where it runs on a cluster: the device's entry says (deltamut.study.placement); None = the site's default.
    resources:
        slurm_partition=lambda wc: STUDY.placement(wc.device).partition,
        gpu=lambda wc: STUDY.placement(wc.device).gpus,
        gpu_model=lambda wc: STUDY.placement(wc.device).gpu_model,
        runtime=lambda wc: STUDY.placement(wc.device).runtime,
        mem_mb=lambda wc: STUDY.placement(wc.device).mem_mb,
    # On a cluster, `group-components` in the profile batches a device's infer jobs into one SLURM job each.
    group:
        "infer-{device}"
    log:
        paths.log("infer", "model", "opt", "mutant", "device", shard=True),
    benchmark:
        paths.benchmark("infer", "model", "opt", "mutant", "device", shard=True)
    conda:
        device_env
    script:
        "../scripts/infer.py"
