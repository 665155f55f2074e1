"""Every file of the result tree, defined once: the rules' `output:` use these templates and the library fills
them in, so a folder is renamed here and nowhere else.

A template holds Snakemake wildcards (`{model}`, `{opt}`, `{mutant}`, `{target}`, `{device}`, ...); `fill`
substitutes them. `{shard}` is empty in an unsharded study and `.shard<k>` for the k-th shard of a sharded one
(`dataset.shard_size`, `deltamut.study.shards`): the files that hold one row per image (the preprocessed
images, every result file) come one per shard, so an unsharded study keeps its plain names. A model's
conversions (`model@conversion`, `deltamut.study.ModelRef`) live in trees of their own under the same templates.
Logs and benchmark records of a rule are `log(rule, *wildcards)` and `benchmark(rule, *wildcards)`.
"""

from __future__ import annotations

RESULTS = "results"
RESOURCES = "resources"
# the folders of one model's tree
DATA_DIR, EXPORT_DIR, REFERENCE_DIR, TVM_DIR = "data", "export", "reference", "tvm"
COMPARE_DIR, REPORT_DIR, THROUGHPUT_DIR, TIMING_DIR = "compare", "report", "throughput", "timing"

MODEL = f"{RESULTS}/{{model}}"
UNSHARDED = ""  # the `{shard}` of an unsharded study's files
PHOTOS = f"{RESOURCES}/photos"

# data: the preprocessed images, and those of input-level mutants
INPUTS = f"{MODEL}/{DATA_DIR}/inputs{{shard}}.npz"
DATASET = f"{MODEL}/{DATA_DIR}/dataset{{shard}}.json"
MUTANT_INPUTS = f"{MODEL}/{DATA_DIR}/{{mutant}}/inputs{{shard}}.npz"
MUTANT_DATASET = f"{MODEL}/{DATA_DIR}/{{mutant}}/dataset{{shard}}.json"

# export and the frameworks' reference outputs
ONNX = f"{MODEL}/{EXPORT_DIR}/model.onnx"
PROGRAM = f"{MODEL}/{EXPORT_DIR}/program.pt2"
REFERENCE = f"{MODEL}/{REFERENCE_DIR}/{{framework}}{{shard}}.npz"

# TVM: the imported graph, each optimisation's graph, each mutant's lowered module, library and outputs
IMPORTED = f"{MODEL}/{TVM_DIR}/imported.json"
OPT = f"{MODEL}/{TVM_DIR}/{{opt}}"
GRAPH = f"{OPT}/graph.json"
INDEX = f"{OPT}/mutants.json"
CENSUS = f"{OPT}/sweeps/{{entry}}.json"
MUTANT = f"{OPT}/{{mutant}}"
MODULE = f"{MUTANT}/module.json"
IR = f"{MUTANT}/ir.txt"
DIFF = f"{MUTANT}/diff.txt"
MANIFEST = f"{MUTANT}/manifest.json"
LIB = f"{MUTANT}/deploy/{{target}}/lib.so"
DEPLOY = f"{MUTANT}/deploy/{{target}}/deploy.json"
OUTPUTS = f"{MUTANT}/infer/{{device}}/outputs{{shard}}.npz"
# one mutant's propagation profile on one device (deltamut.localise): where its effect starts and travels
LOCALISED = f"{MUTANT}/localise/{{device}}"
PROFILE = f"{LOCALISED}/profile.json"
KERNELS = f"{LOCALISED}/kernels.parquet"
NODES = f"{LOCALISED}/nodes.parquet"  # named mode: one row per ONNX node output and witness
MUTANT_BUNDLE = f"{LOCALISED}/bundle"  # a kernel-level mutant's reproducer (deltamut.localise.bundle)
GROWTH_PLOT = f"{LOCALISED}/growth.png"
# a device pair read kernel by kernel: the device's build, each kernel replayed on the baseline device's inputs
AGAINST = f"{LOCALISED}/against/{{baseline}}"
DEVICE_PROFILE = f"{AGAINST}/profile.json"
DEVICE_KERNELS = f"{AGAINST}/kernels.parquet"
DEVICE_GROWTH_PLOT = f"{AGAINST}/growth.png"
# which step of an optimisation makes its build disagree with the reference (deltamut.localise.bisect)
BISECT = f"{OPT}/localise/{{device}}/bisect.json"
BISECT_IR = f"{OPT}/localise/{{device}}/bisect"
# its reproducer: the smallest ONNX subgraph that still flips labels inside the model (deltamut.localise.bundle)
BUNDLE = f"{OPT}/localise/{{device}}/bundle"
BISECT_NODES = f"{OPT}/localise/{{device}}/nodes.parquet"  # named mode under the culprit steps

# compare and report: one model's tables (CSV and Parquet) and figures; the study's across models
TABLE = f"{MODEL}/{COMPARE_DIR}/{{table}}.{{ext}}"
SUMMARY = f"{MODEL}/{COMPARE_DIR}/summary.md"
PLOT = f"{MODEL}/{REPORT_DIR}/{{name}}.png"
THROUGHPUT = f"{MODEL}/{THROUGHPUT_DIR}/{{variant}}.json"
TIMING = f"{MODEL}/{TIMING_DIR}/{{group}}.json"  # one comparison group's interleaved timing (deltamut.timing)
STUDY_TABLE = f"{RESULTS}/{COMPARE_DIR}/{{table}}.{{ext}}"
STUDY_SUMMARY = f"{RESULTS}/summary.md"

# the study file `make own` writes for one user's ONNX file (deltamut.own_model)
OWN_STUDY = f"{RESULTS}/own/{{model}}.yaml"

LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"


def fill(template: str, **values: object) -> str:
    """`template` with its wildcards replaced; a missing value is a KeyError naming it, but for `shard`, which
    is the unsharded file's (empty) unless given."""
    return template.format(**{"shard": UNSHARDED, **values})


def table(name: str, ext: str, model: str | None = None) -> str:
    """A compare table of one model (`per_pair`, `kill_matrix`, ...), or of the study without `model`; a
    template for Snakemake when `model` is the wildcard `{model}`."""
    if model is None:
        return fill(STUDY_TABLE, table=name, ext=ext)
    return TABLE.replace("{model}", model).replace("{table}", name).replace("{ext}", ext)


def _record(root: str, rule: str, wildcards: tuple[str, ...], ext: str, shard: bool) -> str:
    stem = f"{root}/{rule}" + "".join(f"/{{{w}}}" for w in wildcards)
    return stem + ("{shard}" if shard else "") + ext


def log(rule: str, *wildcards: str, shard: bool = False) -> str:
    """The log of a rule's job, one folder per wildcard: `log("compile", "model", "opt")`; a per-shard job's
    (`shard=True`) ends in its shard's suffix, as its outputs do."""
    return _record(LOGS, rule, wildcards, ".log", shard)


def benchmark(rule: str, *wildcards: str, shard: bool = False) -> str:
    """The `benchmark:` record of a rule's job (wall time, memory), laid out like its log."""
    return _record(BENCHMARKS, rule, wildcards, ".tsv", shard)
