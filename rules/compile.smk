rule import_graph:
    input:
        source=graph_source,
    output:
        imported=paths.IMPORTED,
    params:
        # The cache hash ignores wildcards: the name goes through params so every model gets its own entry;
        # the versions of the software that makes the artifact key it too.
        model=lambda wc: wc.model,
        software=software_versions("import"),
        timeout_s=TIMEOUTS["compile_s"],
    log:
        paths.log("import_graph", "model"),
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/import_graph.py"


rule compile:
    input:
        imported=paths.IMPORTED,
    output:
        graph=paths.GRAPH,
    params:
        # The cache hash ignores wildcards: the names go through params so every
        # (model, optimisation) gets its own cache entry.
        model=lambda wc: wc.model,
        opt=lambda wc: wc.opt,
        graph=lambda wc: graph_slice(STUDY.optimisation(wc.opt)),
        software=software_versions("compile"),
        timeout_s=TIMEOUTS["compile_s"],
    log:
        paths.log("compile", "model", "opt"),
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/compile.py"
