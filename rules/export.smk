rule export:
    input:
        export_inputs,
    output:
        "results/{model}/export/model.onnx",
    params:
        # the model's own name (a conversion's is its model's): what the zoo loads
        name=lambda wc: STUDY.split(wc.model)[0],
        model=lambda wc: STUDY.model_spec(wc.model),
        export=lambda wc: STUDY.export_settings(wc.model),
        conversion=lambda wc: STUDY.split(wc.model)[1] != PRIMARY,
        software=software_versions("export"),
    log:
        "results/logs/export/{model}.log",
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/export.py"


rule export_program:
    output:
        "results/{model}/export/program.pt2",
    params:
        name=lambda wc: STUDY.split(wc.model)[0],
        model=lambda wc: STUDY.model_spec(wc.model),
        software=software_versions("export"),
    log:
        "results/logs/export_program/{model}.log",
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/export_program.py"


rule reference:
    input:
        onnx="results/{model}/export/model.onnx",
        inputs=lambda wc: STUDY.inputs_path(wc.model),
    output:
        "results/{model}/reference/{framework}.npz",
    params:
        model=lambda wc: STUDY.model_spec(wc.model),
        runner=RUNNER,
    threads: RUN_THREADS
    log:
        "results/logs/reference/{model}/{framework}.log",
    benchmark:
        "results/benchmarks/reference/{model}/{framework}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/reference.py"
