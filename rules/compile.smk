rule import_graph:
    input:
        graph_source,
    output:
        "results/{model}/tvm/imported.json",
    params:
        # The cache hash ignores wildcards: the name goes through params so every model gets its own entry;
        # the versions of the software that makes the artifact key it too.
        model=lambda wc: wc.model,
        software=software_versions("import"),
        timeout_s=TIMEOUTS["compile_s"],
    log:
        "results/logs/import_graph/{model}.log",
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/import_graph.py"


rule compile:
    input:
        compile_source,
    output:
        "results/{model}/tvm/{opt}/graph.json",
    params:
        # The cache hash ignores wildcards: the names go through params so every
        # (model, optimisation) gets its own cache entry.
        model=lambda wc: wc.model,
        opt=lambda wc: wc.opt,
        graph=lambda wc: graph_slice(STUDY.optimisation(wc.opt)),
        reuse=lambda wc: STUDY.reused_from(wc.model, wc.opt, "graph"),
        software=software_versions("compile"),
        timeout_s=TIMEOUTS["compile_s"],
    log:
        "results/logs/compile/{model}/{opt}.log",
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/compile.py"
