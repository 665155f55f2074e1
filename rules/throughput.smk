# Throughput at batch B (runner.batch_size > 1), apart from the per-image latency at batch 1 of infer/reference.
# The batch-B artifacts are built by the same rules as every other (export, import, compile, mutate, deploy) in
# the model's batched tree, `results/<model>+b<B>/` (deltamut.study.ModelRef): cached, isolated, recorded.


rule throughput:
    input:
        unpack(throughput_inputs),
    output:
        record=paths.THROUGHPUT,
    wildcard_constraints:
        variant=r"torch|onnxruntime|tvm-[A-Za-z0-9_.-]+",
    params:
        model=lambda wc: STUDY.model_spec(wc.model),
        batch_size=STUDY.throughput_batch,
        runner=RUNNER,
        target=lambda wc: config["targets"][STUDY.throughput_target],
        timeout_s=TIMEOUTS["deploy_s"],
    threads: RUN_THREADS
    log:
        paths.log("throughput", "model", "variant"),
    benchmark:
        paths.benchmark("throughput", "model", "variant")
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/throughput.py"


rule throughput_table:
    input:
        records=lambda wc: [paths.fill(paths.THROUGHPUT, model=wc.model, variant=v)
                            for v in STUDY.throughput_variants(wc.model)],
    output:
        csv=report(
            paths.table("throughput", "csv", "{model}"),
            category="Tables",
            labels={"model": "{model}", "table": "throughput"},
        ),
        md=report(
            paths.table("throughput", "md", "{model}"),
            category="Summaries",
            labels={"model": "{model}", "summary": "throughput"},
        ),
    log:
        paths.log("throughput_table", "model"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/throughput_table.py"
