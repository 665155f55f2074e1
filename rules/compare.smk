# A checkpoint: a study that localises findings by their verdict (`localise.kinds`) plans those probes from its
# per-pair table (rules/common.smk: study_probes).
checkpoint compare:
    input:
        outputs=lambda wc: STUDY.model_outputs(wc.model),
        manifests=lambda wc: STUDY.model_manifests(wc.model),
        indexes=lambda wc: list(STUDY.model_indexes(wc.model).values()),
        sweeps=lambda wc: STUDY.sweep_paths(wc.model),
        inputs=lambda wc: STUDY.inputs_paths(wc.model),
        timings=lambda wc: list(timing_paths(STUDY, wc.model).values()),
    output:
        per_image_csv=paths.table("per_image", "csv", "{model}"),
        per_image_parquet=paths.table("per_image", "parquet", "{model}"),
        per_pair_csv=report(
            paths.table("per_pair", "csv", "{model}"),
            category="Tables",
            labels={"model": "{model}", "table": "per pair"},
        ),
        per_pair_parquet=paths.table("per_pair", "parquet", "{model}"),
        kill_matrix_csv=report(
            paths.table("kill_matrix", "csv", "{model}"),
            category="Mutants",
            labels={"model": "{model}", "table": "kill matrix"},
        ),
        kill_matrix_parquet=paths.table("kill_matrix", "parquet", "{model}"),
        scores_csv=report(
            paths.table("mutation_scores", "csv", "{model}"),
            category="Mutants",
            labels={"model": "{model}", "table": "mutation scores"},
        ),
        scores_parquet=paths.table("mutation_scores", "parquet", "{model}"),
        devices_csv=report(
            paths.table("mutants_across_devices", "csv", "{model}"),
            category="Mutants",
            labels={"model": "{model}", "table": "mutants across devices"},
        ),
        devices_parquet=paths.table("mutants_across_devices", "parquet", "{model}"),
        summary=report(
            paths.SUMMARY,
            category="Summaries",
            labels={"model": "{model}"},
        ),
    params:
        variants=lambda wc: STUDY.variants(wc.model),
        pairs=lambda wc: STUDY.pairs(wc.model),
        indexes=lambda wc: STUDY.model_indexes(wc.model),
        thresholds={k: v for k, v in config["compare"].items() if k not in ("reference", "float64_reference", "pairs")},
    log:
        paths.log("compare", "model"),
    benchmark:
        paths.benchmark("compare", "model")
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/compare.py"


rule summary:
    input:
        per_pair=expand(paths.table("per_pair", "parquet", "{model}"), model=list(config["models"])),
        localised=lambda wc: [probe_path(m, p) for m, (run, _) in study_probes().items() for p in run],
    output:
        csv=report(paths.table("per_pair", "csv"), category="Tables", labels={"table": "all pairs"}),
        parquet=paths.table("per_pair", "parquet"),
        summary=report(paths.STUDY_SUMMARY, category="Summaries", labels={"model": "all"}),
    params:
        unprobed=lambda wc, input: [f"{m}: {p['a']}" for m, (_, left) in study_probes().items() for p in left],
    log:
        paths.log("summary"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/summary.py"
