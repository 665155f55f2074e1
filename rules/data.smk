rule photos:
    output:
        directory("resources/photos"),
    log:
        "results/logs/photos.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/photos.py"


rule dataset:
    input:
        photos_input,
    output:
        inputs="results/{model}/data/inputs.npz",
        manifest="results/{model}/data/dataset.json",
    params:
        model=lambda wc: STUDY.model_spec(wc.model),
        images=dataset_images(),
        labels=dataset_labels(),
        limit=config["dataset"]["limit"],
    log:
        "results/logs/dataset/{model}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/dataset.py"


rule input_mutant:
    input:
        photos_input,
    output:
        inputs="results/{model}/data/{mutant}/inputs.npz",
        manifest="results/{model}/data/{mutant}/dataset.json",
    params:
        model=lambda wc: STUDY.model_spec(wc.model),
        spec=lambda wc: STUDY.mutation(wc.mutant),
        images=dataset_images(),
        labels=dataset_labels(),
        limit=config["dataset"]["limit"],
    log:
        "results/logs/input_mutant/{model}/{mutant}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/dataset.py"
