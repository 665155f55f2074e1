rule compare:
    input:
        outputs=lambda wc: STUDY.model_outputs(wc.model),
        manifests=lambda wc: STUDY.model_manifests(wc.model),
        indexes=lambda wc: list(STUDY.model_indexes(wc.model).values()),
        sweeps=lambda wc: STUDY.sweep_paths(wc.model),
        inputs="results/{model}/data/inputs.npz",
    output:
        per_image_csv="results/{model}/compare/per_image.csv",
        per_image_parquet="results/{model}/compare/per_image.parquet",
        per_pair_csv=report(
            "results/{model}/compare/per_pair.csv",
            category="Tables",
            labels={"model": "{model}", "table": "per pair"},
        ),
        per_pair_parquet="results/{model}/compare/per_pair.parquet",
        kill_matrix_csv=report(
            "results/{model}/compare/kill_matrix.csv",
            category="Mutants",
            labels={"model": "{model}", "table": "kill matrix"},
        ),
        kill_matrix_parquet="results/{model}/compare/kill_matrix.parquet",
        scores_csv=report(
            "results/{model}/compare/mutation_scores.csv",
            category="Mutants",
            labels={"model": "{model}", "table": "mutation scores"},
        ),
        scores_parquet="results/{model}/compare/mutation_scores.parquet",
        devices_csv=report(
            "results/{model}/compare/mutants_across_devices.csv",
            category="Mutants",
            labels={"model": "{model}", "table": "mutants across devices"},
        ),
        devices_parquet="results/{model}/compare/mutants_across_devices.parquet",
        summary=report(
            "results/{model}/compare/summary.md",
            category="Summaries",
            labels={"model": "{model}"},
        ),
    params:
        variants=lambda wc: STUDY.variants(wc.model),
        pairs=lambda wc: STUDY.pairs(wc.model),
        indexes=lambda wc: STUDY.model_indexes(wc.model),
        thresholds=lambda wc: {k: v for k, v in config.get("compare", {}).items()
                               if k not in ("reference", "float64_reference", "pairs")},
    log:
        "results/logs/compare/{model}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/compare.py"


rule summary:
    input:
        expand("results/{model}/compare/per_pair.parquet", model=list(config["models"])),
    output:
        csv=report("results/compare/per_pair.csv", category="Tables", labels={"table": "all pairs"}),
        parquet="results/compare/per_pair.parquet",
        summary=report("results/summary.md", category="Summaries", labels={"model": "all"}),
    log:
        "results/logs/summary.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/summary.py"
