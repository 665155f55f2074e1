# deltamut: does a model still behave the same once exported, compiled, optimised, mutated and deployed?
import gc

from snakemake.utils import min_version

min_version("9.0")


# The default study, unless --configfile names another one (which then replaces it instead of
# being merged into it, so a small test study never inherits the default models).
if not config:

    configfile: "config/config.yaml"



report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/export.smk"
include: "rules/compile.smk"
include: "rules/mutate.smk"
include: "rules/deploy.smk"
include: "rules/infer.smk"
include: "rules/timing.smk"
include: "rules/compare.smk"
include: "rules/localise.smk"
include: "rules/throughput.smk"
include: "rules/report.smk"


rule all:
    input:
        STUDY.final_outputs(),
    default_target: True


# Failure records never stay in the between-workflow cache (rules/common.smk): this workflow's are evicted,
# and the result tree keeps them as plain files.
onsuccess:
    if OUTPUT_CACHE:
        evict_failures(OUTPUT_CACHE, "results")


onerror:
    if OUTPUT_CACHE:
        evict_failures(OUTPUT_CACHE, "results")


# Everything built so far (the imported libraries, the study, the rules) lives until the workflow ends: keep it
# out of the garbage collector's scans, which would otherwise walk it again on every full collection while the
# DAG is built (10% of the time of planning the paper-scale study).
gc.freeze()
