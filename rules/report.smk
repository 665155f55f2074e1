# The report's figures, per model: what `snakemake --report` embeds (see report/*.rst for their captions).


rule plots:
    input:
        per_image=paths.table("per_image", "parquet", "{model}"),
        per_pair=paths.table("per_pair", "parquet", "{model}"),
        kill_matrix=paths.table("kill_matrix", "parquet", "{model}"),
        dataset=lambda wc: STUDY.inputs_paths(wc.model, paths.DATASET),
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
        paths.log("plots", "model"),
    conda:
        "../envs/cpu.yaml"
    script:
        "../scripts/plots.py"
