# Throughput at batch B (runner.batch_size > 1), apart from the per-image latency at batch 1 of infer/reference.
from deltamut.runner.throughput import HOST_TARGET, needs_onnx, opt_of, throughput_variants

rule throughput:
    input:
        inputs=lambda wc: STUDY.inputs_path(wc.model),
        # Compiled variants time the export stage's ONNX at batch 1: the file behind the infer stage's latency.
        onnx=lambda wc: f"results/{wc.model}/export/model.onnx" if needs_onnx(wc.variant) else [],
    output:
        "results/{model}/throughput/{variant}.json",
    wildcard_constraints:
        variant=r"torch|onnxruntime|tvm-[A-Za-z0-9_.-]+",
    params:
        model=lambda wc: STUDY.model_spec(wc.model),
        opt=lambda wc: STUDY.optimisations.get(opt_of(wc.variant)),
        batch_size=STUDY.throughput_batch,
        runner=RUNNER,
        export=lambda wc: STUDY.export_settings(wc.model),
        target=HOST_TARGET,
        timeout_s=TIMEOUTS["compile_s"],
    threads: RUN_THREADS
    log:
        "results/logs/throughput/{model}/{variant}.log",
    benchmark:
        "results/benchmarks/throughput/{model}/{variant}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/throughput.py"


rule throughput_table:
    input:
        lambda wc: expand("results/{{model}}/throughput/{variant}.json",
                          variant=throughput_variants(STUDY.frameworks(wc.model), STUDY.optimisations)),
    output:
        csv=report(
            "results/{model}/compare/throughput.csv",
            category="Tables",
            labels={"model": "{model}", "table": "throughput"},
        ),
        md=report(
            "results/{model}/compare/throughput.md",
            category="Summaries",
            labels={"model": "{model}", "summary": "throughput"},
        ),
    log:
        "results/logs/throughput_table/{model}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/throughput_table.py"
