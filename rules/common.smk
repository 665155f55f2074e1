# Bookkeeping done once: validate the config, expand the study, name the wildcards. Every path comes from
# deltamut.paths, every name of a model or variant from deltamut.study: the rules only combine them.
import os
import sys

sys.path.insert(0, workflow.basedir)

from deltamut import paths, provenance
from deltamut.cache import evict_failures
from deltamut.compiler.optconfig import codegen_slice, graph_slice, lowering_slice
from deltamut.config import load_study
from deltamut.study import ORIGINAL, ModelRef
from deltamut.study.shards import WILDCARD as SHARD_WILDCARD
from deltamut.timing.groups import WILDCARD as TIMING_GROUP
from deltamut.timing.groups import group_device, member_files, timing_members, timing_paths
from deltamut.localise.plan import (
    SELECTION,
    bisection_of,
    device_probe_of,
    probe_of,
    probe_path,
    probes,
    selects_by_verdict,
)

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
RUN_THREADS = config["runner"]["threads"] or 1024

# What the timed runs read; batch_size is the throughput study's (rules/throughput.smk), so turning it on
# does not rerun every infer job.
RUNNER = {k: v for k, v in config["runner"].items() if k != "batch_size"}

TIMEOUTS = config["timeouts"]  # the schema fills in every limit

# What a localisation probe's run reads (witnesses, tolerance, time limit): not the selection, so selecting one
# more mutant reruns no other probe
LOCALISE = {k: v for k, v in config["localise"].items() if k not in SELECTION}


wildcard_constraints:
    # a model, a conversion of it, or its batched build (deltamut.study.ModelRef)
    model=r"[A-Za-z0-9_.-]+(@[A-Za-z0-9_.-]+)?(\+b[0-9]+)?",
    opt=r"[A-Za-z0-9_.-]+",
    mutant=r"[A-Za-z0-9_.-]+",
    target=r"[A-Za-z0-9_.-]+",
    device=r"[A-Za-z0-9_.-]+",
    baseline=r"[A-Za-z0-9_.-]+",
    entry=r"[A-Za-z0-9_.-]+",
    framework=r"torch|onnxruntime|torch64",
    # empty, or the shard a per-image file belongs to (deltamut.study.shards)
    shard=SHARD_WILDCARD,


def photos_input(wildcards):
    return paths.PHOTOS if config["dataset"]["images"] == "default" else []


def dataset_images():
    images = config["dataset"]["images"]
    return paths.PHOTOS if images == "default" else images


def dataset_labels():
    labels = config["dataset"]["labels"]
    if labels == "default":
        from deltamut.data.labels import default_ground_truth

        return str(default_ground_truth())
    return labels


def original_paths(wildcards):
    """The original's module and IR, which every other mutant is diffed and checked against."""
    if wildcards.mutant == ORIGINAL:
        return {}
    where = {"model": wildcards.model, "opt": wildcards.opt, "mutant": ORIGINAL}
    return {"original_module": paths.fill(paths.MODULE, **where), "original_ir": paths.fill(paths.IR, **where)}


def mutated_graph(wildcards):
    """The graph a mutant starts from: the configuration's graph (an ablated step that leaves the graph alone
    points at its base's); graph- and model-level mutants also read the graph as imported."""
    graph = paths.fill(paths.GRAPH, model=wildcards.model, opt=STUDY.source_opt(wildcards.model, wildcards.opt,
                                                                                "graph"))
    if STUDY.mutates_graph(wildcards.mutant):
        return {"graph": graph, "imported": paths.fill(paths.IMPORTED, model=wildcards.model)}
    return {"graph": graph}


def sweep_module(wildcards):
    """What a sweep's census counts sites in: the graph as imported (graph and model level), or the lowered
    original (kernel level)."""
    if STUDY.mutates_graph(wildcards.entry):
        return paths.fill(paths.IMPORTED, model=wildcards.model)
    return STUDY.artifact(paths.MODULE, wildcards.model, wildcards.opt)


def sweep_census(model, opt, entry):
    """A sweep's census file, once its checkpoint has run (until then Snakemake postpones what needs it)."""
    return checkpoints.census.get(model=model, opt=opt, entry=entry).output[0]


def built_module(wildcards):
    """The lowered module a deploy job builds: the mutant's (an ablated step that leaves the lowering alone
    builds its base's original)."""
    where = (wildcards.model, wildcards.opt, wildcards.mutant)
    return {"module": STUDY.artifact(paths.MODULE, *where), "manifest": STUDY.artifact(paths.MANIFEST, *where)}


def device_env(wildcards):
    """The conda environment an infer job runs in on a cluster: its device's (deltamut.study.placement)."""
    return f"../envs/{STUDY.placement(wildcards.device).env}.yaml"


def deploy_inputs(wildcards):
    """An infer job runs its mutant's library (an input-level mutant: the original's, on its own images)."""
    mutant = ORIGINAL if STUDY.is_input_mutant(wildcards.mutant) else wildcards.mutant
    where = {"model": wildcards.model, "opt": wildcards.opt, "mutant": mutant,
             "target": STUDY.target_of(wildcards.device)}
    return {"lib": paths.fill(paths.LIB, **where), "info": paths.fill(paths.DEPLOY, **where),
            "inputs": STUDY.inputs_path(wildcards.model, wildcards.mutant if STUDY.is_input_mutant(wildcards.mutant)
                                        else ORIGINAL, wildcards.shard)}


def mutant_twins(wildcards):
    """A mutant's deploy job reads the mutant index to learn whether it duplicates another mutant. The
    index is `ancient`: editing one mutation rewrites the index but must not rebuild every other mutant."""
    if wildcards.mutant == ORIGINAL:
        return {}
    return {"mutant_index": ancient(paths.fill(paths.INDEX, model=wildcards.model, opt=wildcards.opt))}


def graph_source(wildcards):
    """What TVM imports: the ONNX file, or the ExportedProgram of a torch.export conversion."""
    exported = STUDY.export_settings(wildcards.model)["exporter"] == "torch.export"
    return paths.fill(paths.PROGRAM if exported else paths.ONNX, model=wildcards.model)


def software_versions(stage):
    """The versions of the software that makes a cached stage's artifact (`provenance.stage_software`): a
    param, so that the between-workflow cache never serves an artifact made by other versions."""
    return provenance.stage_software(stage)


def export_inputs(wildcards):
    """An ONNX-file model's file is an input, so replacing it reruns (and re-caches) its export, and so are the
    study's images (its first shard's), on which the prepared file is checked against it. A missing file is
    left to the export job, which fails alone naming it instead of stopping the whole study."""
    spec = STUDY.model_spec(wildcards.model)
    if spec.get("source") != "onnx":
        return {}
    found = {"source": spec["path"]} if os.path.exists(spec["path"]) else {}
    return {**found, "inputs": STUDY.inputs_path(wildcards.model, shard=STUDY.shards[0])}


def plot_output(name, figure):
    return report(
        paths.PLOT.replace("{name}", name),
        caption=f"../report/{name}.rst",
        category="Plots",
        subcategory="{model}",
        labels={"model": "{model}", "figure": figure},
    )


def throughput_inputs(wildcards):
    """The images (the first shard's), and what a throughput variant runs at batch 1 and at batch B: nothing
    for PyTorch (one module runs any batch), the ONNX files for ONNX Runtime, the libraries for a TVM
    optimisation."""
    from deltamut.runner.throughput import parse_variant

    framework, opt = parse_variant(wildcards.variant)
    model = ModelRef.parse(wildcards.model)
    batched = str(model.batched(STUDY.throughput_batch))
    inputs = {"inputs": STUDY.inputs_path(wildcards.model, shard=STUDY.shards[0])}
    if framework == "onnxruntime":
        inputs.update(onnx=paths.fill(paths.ONNX, model=str(model)), onnx_batched=paths.fill(paths.ONNX, model=batched))
    elif framework == "tvm":
        where = {"opt": opt, "mutant": ORIGINAL, "target": STUDY.throughput_target}
        inputs.update(lib=paths.fill(paths.LIB, model=str(model), **where),
                      lib_batched=paths.fill(paths.LIB, model=batched, **where))
    return inputs


def timing_inputs(wildcards):
    """A timing group's images (the first shard's) and what its members run: ONNX files, libraries and their
    deploy records (deltamut.timing.groups)."""
    members = timing_members(STUDY, wildcards.model, wildcards.group)
    return {"inputs": STUDY.inputs_path(wildcards.model, shard=STUDY.shards[0]), "files": member_files(members)}


def timing_device(wildcards):
    return group_device(STUDY, wildcards.model, wildcards.group)


def timing_placement(wildcards):
    """Where a timing job runs on a cluster: where its device's infer jobs run."""
    return STUDY.placement(timing_device(wildcards))


def study_probes():
    """Model -> (the probes run, those over the budget): the mutants and optimisations named up front, and where
    the study selects findings by their verdict, those of the model's per-pair table, once its compare (a
    checkpoint) has run (until then Snakemake postpones what needs them)."""
    return {m: probes(STUDY, m, checkpoints.compare.get(model=m).output.per_pair_parquet
                      if selects_by_verdict(STUDY) else None) for m in STUDY.models}


def _probe(wildcards):
    return probe_of(STUDY, wildcards.model, wildcards.opt, wildcards.mutant, wildcards.device)


def localise_inputs(wildcards):
    """Both libraries and lowered modules, the mutant's deploy record and manifest, the ONNX file (to name
    kernels, mark its tensors and cut reproducers), the images and compare's per-image table
    (deltamut.localise.plan.probe_of)."""
    probe = _probe(wildcards)
    keys = ("mutant_lib", "mutant_info", "manifest", "mutant_module", "original_lib", "original_module", "onnx",
            "inputs", "per_image")
    return {k: probe[k] for k in keys if probe[k]}


def localise_pair(wildcards):
    probe = _probe(wildcards)
    return {"a": probe["a"], "b": probe["b"]}


def localise_rebuild(wildcards):
    """What named mode and the reproducer rebuild for this probe (deltamut.localise.plan.rebuild_of)."""
    return _probe(wildcards)["rebuild"]


def _device_probe(wildcards):
    return device_probe_of(STUDY, wildcards.model, wildcards.opt, wildcards.device, wildcards.baseline)


def localise_device_inputs(wildcards):
    """Both devices' libraries and deploy records, the ONNX file (to name kernels), the images and compare's
    per-image table (deltamut.localise.plan.device_probe_of)."""
    probe = _device_probe(wildcards)
    keys = ("mutant_lib", "mutant_info", "original_lib", "onnx", "inputs", "per_image")
    return {k: probe[k] for k in keys if probe[k]}


def localise_device_pair(wildcards):
    probe = _device_probe(wildcards)
    return {"a": probe["a"], "b": probe["b"]}


def localise_device_replay(wildcards):
    """Where the device's kernels are replayed: as its infer jobs reach it (deltamut.localise.plan.device_probe_of)."""
    return _device_probe(wildcards)["replay_on"]


def bisection(wildcards):
    return bisection_of(STUDY, wildcards.model, wildcards.opt, wildcards.device)


def bisect_inputs(wildcards):
    """The imported graph every trial build starts from, the ONNX file (for the reproducer), the images,
    compare's per-image table and the reference's results (deltamut.localise.plan.bisection_of)."""
    b = bisection(wildcards)
    return {k: b[k] for k in ("imported", "onnx", "inputs", "per_image", "reference") if b[k]}
