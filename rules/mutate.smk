rule mutate:
    input:
        unpack(original_paths),
        graph="results/{model}/tvm/{opt}/graph.json",
    output:
        module="results/{model}/tvm/{opt}/{mutant}/module.json",
        ir="results/{model}/tvm/{opt}/{mutant}/ir.txt",
        diff="results/{model}/tvm/{opt}/{mutant}/diff.txt",
        manifest="results/{model}/tvm/{opt}/{mutant}/manifest.json",
    params:
        # Only this mutation's entry: editing one mutation reruns only its jobs.
        spec=lambda wc: STUDY.mutation(wc.mutant),
        lowering=lambda wc: lowering_slice(config["optimisations"][wc.opt]),
        timeout_s=TIMEOUTS["mutate_s"],
    log:
        "results/logs/mutate/{model}/{opt}/{mutant}.log",
    benchmark:
        "results/benchmarks/mutate/{model}/{opt}/{mutant}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/mutate.py"
