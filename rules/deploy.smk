rule deploy:
    input:
        unpack(mutant_twins),
        module="results/{model}/tvm/{opt}/{mutant}/module.json",
        manifest="results/{model}/tvm/{opt}/{mutant}/manifest.json",
    output:
        lib="results/{model}/tvm/{opt}/{mutant}/deploy/{target}/lib.so",
        info="results/{model}/tvm/{opt}/{mutant}/deploy/{target}/deploy.json",
    params:
        target=lambda wc: config["targets"][wc.target],
        codegen=lambda wc: codegen_slice(STUDY.optimisation(wc.opt)),
        timeout_s=TIMEOUTS["deploy_s"],
    log:
        "results/logs/deploy/{model}/{opt}/{mutant}/{target}.log",
    benchmark:
        "results/benchmarks/deploy/{model}/{opt}/{mutant}/{target}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/deploy.py"
