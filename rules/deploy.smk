rule deploy:
    input:
        unpack(mutant_twins),
        unpack(built_module),
    output:
        lib=paths.LIB,
        info=paths.DEPLOY,
    params:
        target=lambda wc: config["targets"][wc.target],
        codegen=lambda wc: codegen_slice(STUDY.optimisation(wc.opt)),
        timeout_s=TIMEOUTS["deploy_s"],
    group:
        "deploy"
    log:
        paths.log("deploy", "model", "opt", "mutant", "target"),
    benchmark:
        paths.benchmark("deploy", "model", "opt", "mutant", "target")
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/deploy.py"
