rule photos:
    output:
        photos=directory(paths.PHOTOS),
    log:
        paths.log("photos"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/photos.py"


rule dataset:
    input:
        photos_input,
    output:
        inputs=paths.INPUTS,
        manifest=paths.DATASET,
    params:
        model=lambda wc: STUDY.model_spec(wc.model),
        images=dataset_images(),
        labels=dataset_labels(),
        limit=config["dataset"]["limit"],
        window=lambda wc: STUDY.shard_window(wc.shard),
    log:
        paths.log("dataset", "model", shard=True),
    benchmark:
        paths.benchmark("dataset", "model", shard=True)
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/dataset.py"


rule input_mutant:
    input:
        photos_input,
    output:
        inputs=paths.MUTANT_INPUTS,
        manifest=paths.MUTANT_DATASET,
    params:
        model=lambda wc: STUDY.model_spec(wc.model),
        spec=lambda wc: STUDY.mutation(wc.mutant),
        images=dataset_images(),
        labels=dataset_labels(),
        limit=config["dataset"]["limit"],
        window=lambda wc: STUDY.shard_window(wc.shard),
    log:
        paths.log("input_mutant", "model", "mutant", shard=True),
    benchmark:
        paths.benchmark("input_mutant", "model", "mutant", shard=True)
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/input_mutant.py"
