rule mutate:
    input:
        unpack(original_paths),
        unpack(mutation_start),
        graph="results/{model}/tvm/{opt}/graph.json",
    output:
        module="results/{model}/tvm/{opt}/{mutant}/module.json",
        ir="results/{model}/tvm/{opt}/{mutant}/ir.txt",
        diff="results/{model}/tvm/{opt}/{mutant}/diff.txt",
        manifest="results/{model}/tvm/{opt}/{mutant}/manifest.json",
    params:
        # Only this mutation's entry: editing one mutation reruns only its jobs.
        spec=lambda wc: STUDY.mutation(wc.mutant),
        lowering=lambda wc: lowering_slice(STUDY.optimisation(wc.opt)),
        # graph- and model-level mutants run the configuration's graph passes after mutating
        graph_passes=lambda wc: graph_slice(STUDY.optimisation(wc.opt)) if STUDY.mutates_graph(wc.mutant) else {},
        timeout_s=TIMEOUTS["mutate_s"],
    log:
        "results/logs/mutate/{model}/{opt}/{mutant}.log",
    benchmark:
        "results/benchmarks/mutate/{model}/{opt}/{mutant}.tsv"
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/mutate.py"


rule mutant_index:
    input:
        lambda wc: [STUDY.manifest_path(wc.model, wc.opt, m) for m in STUDY.built_mutants(wc.model, wc.opt)],
    output:
        "results/{model}/tvm/{opt}/mutants.json",
    localrule: True
    log:
        "results/logs/mutant_index/{model}/{opt}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/mutant_index.py"


# A sweep (`sites: each` or `sites: {sample: N}`) is one mutant per site: its census counts the candidate
# sites and chooses some; the workflow reads the choice (a checkpoint) before it plans the per-site mutants.
checkpoint census:
    input:
        sweep_module,
    output:
        "results/{model}/tvm/{opt}/sweeps/{entry}.json",
    params:
        spec=lambda wc: STUDY.mutation(wc.entry),
        timeout_s=TIMEOUTS["mutate_s"],
    log:
        "results/logs/census/{model}/{opt}/{entry}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/census.py"
