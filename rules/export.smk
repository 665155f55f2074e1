rule export:
    input:
        unpack(export_inputs),
    output:
        onnx=paths.ONNX,
    params:
        # the model's own name (a conversion's or a batched build's is its model's): what the zoo loads
        name=lambda wc: ModelRef.parse(wc.model).base,
        model=lambda wc: STUDY.model_spec(wc.model),
        export=lambda wc: STUDY.export_settings(wc.model),  # exporter, opset, batch size
        conversion=lambda wc: ModelRef.parse(wc.model).is_conversion,
        software=software_versions("export"),
    log:
        paths.log("export", "model"),
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/export.py"


rule export_program:
    output:
        program=paths.PROGRAM,
    params:
        name=lambda wc: ModelRef.parse(wc.model).base,
        model=lambda wc: STUDY.model_spec(wc.model),
        software=software_versions("export"),
    log:
        paths.log("export_program", "model"),
    cache: "omit-software"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/export_program.py"


rule reference:
    input:
        onnx=paths.ONNX,
        inputs=lambda wc: STUDY.inputs_path(wc.model, shard=wc.shard),
    output:
        outputs=paths.REFERENCE,
    params:
        model=lambda wc: STUDY.model_spec(wc.model),
        runner=RUNNER,
    threads: RUN_THREADS
    log:
        paths.log("reference", "model", "framework", shard=True),
    benchmark:
        paths.benchmark("reference", "model", "framework", shard=True)
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/reference.py"
