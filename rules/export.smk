rule export:
    input:
        export_inputs,
    output:
        "results/{model}/export/model.onnx",
    params:
        name=lambda wc: wc.model,
        model=lambda wc: STUDY.model_spec(wc.model),
        export=config.get("export", {}),
    log:
        "results/logs/export/{model}.log",
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/export.py"


rule reference:
    input:
        onnx="results/{model}/export/model.onnx",
        inputs="results/{model}/data/inputs.npz",
    output:
        "results/{model}/reference/{framework}.npz",
    params:
        model=lambda wc: STUDY.model_spec(wc.model),
        runner=config.get("runner", {}),
    threads: RUN_THREADS
    log:
        "results/logs/reference/{model}/{framework}.log",
    benchmark:
        "results/benchmarks/reference/{model}/{framework}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/reference.py"
