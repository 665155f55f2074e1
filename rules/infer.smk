rule infer:
    input:
        unpack(deploy_inputs),
    output:
        outputs=paths.OUTPUTS,
    params:
        device=lambda wc: config["devices"][wc.device],
        target=lambda wc: config["targets"][STUDY.target_of(wc.device)],
        runner=RUNNER,
    threads: RUN_THREADS
    log:
        paths.log("infer", "model", "opt", "mutant", "device"),
    benchmark:
        paths.benchmark("infer", "model", "opt", "mutant", "device")
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/infer.py"
