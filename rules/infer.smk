rule infer:
    input:
        unpack(deploy_inputs),
    output:
        "results/{model}/tvm/{opt}/{mutant}/infer/{device}/outputs.npz",
    params:
        device=lambda wc: config["devices"][wc.device],
        target=lambda wc: config["targets"][STUDY.target_of(wc.device)],
        runner=RUNNER,
    threads: RUN_THREADS
    log:
        "results/logs/infer/{model}/{opt}/{mutant}/{device}.log",
    benchmark:
        "results/benchmarks/infer/{model}/{opt}/{mutant}/{device}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/infer.py"
