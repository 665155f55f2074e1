# The report's figures, per model: what `snakemake --report` embeds (see report/*.rst for their captions).


rule plots:
    input:
        per_image="results/{model}/compare/per_image.parquet",
        per_pair="results/{model}/compare/per_pair.parquet",
        kill_matrix="results/{model}/compare/kill_matrix.parquet",
        dataset="results/{model}/data/dataset.json",
        outputs=lambda wc: STUDY.model_outputs(wc.model),
    output:
        heatmap=plot_output("heatmap", "top-1 disagreement heatmap"),
        kill_matrix=plot_output("kill_matrix", "kill matrix of mutants"),
        sites=plot_output("sites", "kill rate by site"),
        latency=plot_output("latency", "latency distributions"),
        gallery=plot_output("gallery", "gallery of changed images"),
    params:
        variants=lambda wc: STUDY.variants(wc.model),
        reference=lambda wc: STUDY.reference(wc.model),
    log:
        "results/logs/plots/{model}.log",
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/report.py"
