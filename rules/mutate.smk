rule mutate:
    input:
        unpack(original_paths),
        unpack(mutated_graph),
    output:
        module=paths.MODULE,
        ir=paths.IR,
        diff=paths.DIFF,
        manifest=paths.MANIFEST,
    params:
        # Only this mutation's entry: editing one mutation reruns only its jobs.
        spec=lambda wc: STUDY.mutation(wc.mutant),
        lowering=lambda wc: lowering_slice(STUDY.optimisation(wc.opt)),
        # graph- and model-level mutants run the configuration's graph passes after mutating
        graph_passes=lambda wc: graph_slice(STUDY.optimisation(wc.opt)) if STUDY.mutates_graph(wc.mutant) else {},
        timeout_s=TIMEOUTS["mutate_s"],
    group:
        "mutate"
    log:
        paths.log("mutate", "model", "opt", "mutant"),
    benchmark:
        paths.benchmark("mutate", "model", "opt", "mutant")
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/mutate.py"


rule mutant_index:
    input:
        manifests=lambda wc: [paths.fill(paths.MANIFEST, model=wc.model, opt=wc.opt, mutant=m)
                              for m in STUDY.built_mutants(wc.model, wc.opt)],
    output:
        index=paths.INDEX,
    localrule: True
    log:
        paths.log("mutant_index", "model", "opt"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/mutant_index.py"


# A sweep (`sites: each` or `sites: {sample: N}`) is one mutant per site: its census counts the candidate
# sites and chooses some; the workflow reads the choice (a checkpoint) before it plans the per-site mutants.
checkpoint census:
    input:
        module=sweep_module,
    output:
        census=paths.CENSUS,
    params:
        spec=lambda wc: STUDY.mutation(wc.entry),
        timeout_s=TIMEOUTS["mutate_s"],
    log:
        paths.log("census", "model", "opt", "entry"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/census.py"
