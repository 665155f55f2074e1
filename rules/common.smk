# Bookkeeping done once: validate the config, expand the study, name the wildcards.
import os
import sys

sys.path.insert(0, workflow.basedir)

from deltamut import provenance
from deltamut.cache import evict_failures
from deltamut.compiler.optconfig import codegen_slice, graph_slice, lowering_slice
from deltamut.config import load_study
from deltamut.study import ORIGINAL, PRIMARY

STUDY = load_study(config, base=workflow.basedir)
STUDY.site_source = lambda model, opt, entry: sweep_census(model, opt, entry)  # noqa: F821 (defined below)

# The between-workflow cache (--cache) must never serve a failure record: a compile that timed out once would
# be a timeout in every later study. Records stored by earlier workflows are evicted before this one plans;
# this workflow's own are evicted when it ends (Snakefile: onsuccess/onerror). Only the main process does it:
# each job's process parses this file too, and must not evict a record that a running job still reads.
OUTPUT_CACHE = os.environ.get("SNAKEMAKE_OUTPUT_CACHE") if workflow.workflow_settings.cache is not None else None
if OUTPUT_CACHE and workflow.is_main_process:
    evict_failures(OUTPUT_CACHE)

# Infer and reference jobs time the model: they ask for every core (Snakemake caps this at --cores) so no
# other job runs beside them and skews latency; the backend uses that many threads.
# On a cluster, profiles set `set-threads` for them instead.
RUN_THREADS = config.get("runner", {}).get("threads") or 1024

# What the timed runs read; batch_size is the throughput study's (rules/throughput.smk), so turning it on
# does not rerun every infer job.
RUNNER = {k: v for k, v in config.get("runner", {}).items() if k != "batch_size"}

TIMEOUTS = {"compile_s": 1800, "mutate_s": 1800, "deploy_s": 1800, **config.get("timeouts", {})}


wildcard_constraints:
    model=r"[A-Za-z0-9_.-]+(@[A-Za-z0-9_.-]+)?",  # a model, or a conversion of it (deltamut.study)
    opt=r"[A-Za-z0-9_.-]+",
    mutant=r"[A-Za-z0-9_.-]+",
    target=r"[A-Za-z0-9_.-]+",
    device=r"[A-Za-z0-9_.-]+",
    entry=r"[A-Za-z0-9_.-]+",
    framework=r"torch|onnxruntime|torch64",


def photos_input(wildcards):
    return "resources/photos" if config["dataset"]["images"] == "default" else []


def dataset_images():
    images = config["dataset"]["images"]
    return "resources/photos" if images == "default" else images


def dataset_labels():
    labels = config["dataset"]["labels"]
    if labels == "default":
        from deltamut.data.labels import default_ground_truth

        return str(default_ground_truth())
    return labels


def original_paths(wildcards):
    """The original's module and IR, which every other mutant is diffed and checked against."""
    if wildcards.mutant == ORIGINAL:
        reused = STUDY.reused_from(wildcards.model, wildcards.opt, "lowering")
        if reused is None:
            return {}
        base = f"results/{wildcards.model}/tvm/{reused}/{ORIGINAL}"  # an ablated step lowering leaves alone
        return {"reuse_module": f"{base}/module.json", "reuse_ir": f"{base}/ir.txt",
                "reuse_manifest": f"{base}/manifest.json"}
    base = f"results/{wildcards.model}/tvm/{wildcards.opt}/{ORIGINAL}"
    return {"original_module": f"{base}/module.json", "original_ir": f"{base}/ir.txt"}


def sweep_module(wildcards):
    """What a sweep's census counts sites in: the graph as imported (graph and model level), or the lowered
    original (kernel level)."""
    if STUDY.mutates_graph(wildcards.entry):
        return f"results/{wildcards.model}/tvm/imported.json"
    return f"results/{wildcards.model}/tvm/{wildcards.opt}/{ORIGINAL}/module.json"


def sweep_census(model, opt, entry):
    """A sweep's census file, once its checkpoint has run (until then Snakemake postpones what needs it)."""
    return checkpoints.census.get(model=model, opt=opt, entry=entry).output[0]


def mutation_start(wildcards):
    """Graph- and model-level mutants start from the graph as imported, before the configuration's passes."""
    if STUDY.mutates_graph(wildcards.mutant):
        return {"imported": f"results/{wildcards.model}/tvm/imported.json"}
    return {}


def built_mutant(wildcards):
    """Input-level mutants run the original's library on transformed images."""
    return ORIGINAL if STUDY.is_input_mutant(wildcards.mutant) else wildcards.mutant


def deploy_inputs(wildcards):
    mutant = built_mutant(wildcards)
    base = f"results/{wildcards.model}/tvm/{wildcards.opt}/{mutant}/deploy/{STUDY.target_of(wildcards.device)}"
    return {"lib": f"{base}/lib.so", "info": f"{base}/deploy.json",
            "inputs": STUDY.inputs_path(wildcards.model, wildcards.mutant if mutant == ORIGINAL else ORIGINAL)}


def mutant_twins(wildcards):
    """A mutant's deploy job reads the mutant index to learn whether it duplicates another mutant. The
    index is `ancient`: editing one mutation rewrites the index but must not rebuild every other mutant."""
    if wildcards.mutant == ORIGINAL:
        return {}
    return {"mutant_index": ancient(STUDY.index_path(wildcards.model, wildcards.opt))}


def graph_source(wildcards):
    """What TVM imports: the ONNX file, or the ExportedProgram of a torch.export conversion."""
    exported = STUDY.export_settings(wildcards.model)["exporter"] == "torch.export"
    return f"results/{wildcards.model}/export/" + ("program.pt2" if exported else "model.onnx")


def compile_source(wildcards):
    """The imported module; or, for an ablated configuration whose graph passes are its base's, the base's
    graph module to copy."""
    reused = STUDY.reused_from(wildcards.model, wildcards.opt, "graph")
    if reused:
        return f"results/{wildcards.model}/tvm/{reused}/graph.json"
    return f"results/{wildcards.model}/tvm/imported.json"


def software_versions(stage):
    """The versions of the software that makes a cached stage's artifact (`provenance.stage_software`): a
    param, so that the between-workflow cache never serves an artifact made by other versions."""
    return provenance.stage_software(stage)


def export_inputs(wildcards):
    """An ONNX-file model's file is an input, so replacing it reruns (and re-caches) its export. A missing
    file is left to the export job, which fails alone naming it instead of stopping the whole study."""
    spec = STUDY.model_spec(wildcards.model)
    return [spec["path"]] if spec.get("source") == "onnx" and os.path.exists(spec["path"]) else []


def plot_output(name, figure):
    return report(
        f"results/{{model}}/report/{name}.png",
        caption=f"../report/{name}.rst",
        category="Plots",
        subcategory="{model}",
        labels={"model": "{model}", "figure": figure},
    )
