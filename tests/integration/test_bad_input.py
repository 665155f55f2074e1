"""Bad input meets the real entry point: each mistake gives one clear message that names the culprit.

A study that cannot be planned (an unknown key, a wrong type, a name that refers to nothing) is refused by
`snakemake -n` before any job starts; files that turn out bad when a job opens them (a missing or corrupt
ONNX model or weights file, an empty image folder) fail that job with the culprit named on the terminal; and
things that are findings rather than mistakes (an unreadable image, an unreachable board, a library built
for another CPU) become recorded results while the rest of the study completes.

The model-, data- and runner-level errors are unit-tested next to their code (tests/unit/test_models.py,
test_data.py, test_runner.py); here they are checked as a user meets them, through Snakemake.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from deltamut.config import ConfigError, load_study
from deltamut.runner.stage import check_device_target

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
AARCH64 = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "cross_compiler": "aarch64-linux-gnu-g++"}


def snakemake(workdir: Path, config: dict, *args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    """Run the real workflow on `config` in `workdir`, as a user would from a shell."""
    configfile = workdir / "study.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--configfile", str(configfile), "-d", str(workdir),
           "--cores", "2", *args]
    # Snakemake writes its own messages to stdout or stderr depending on where they come from; a user sees
    # both on the terminal, so the tests read them together, in order.
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                          cwd=workdir)


def _edit(path: str, value):
    """A copy of the tiny study with `value` at the dotted `path` (None deletes the key)."""
    def make() -> dict:
        config = copy.deepcopy(TINY)
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last)
        else:
            node[last] = value
        return config
    return make


# (case, config, regex the message must match: it names the key and the wrong value)
PLAN_ERRORS = [
    ("misspelt top-level key", _edit("optimisation", {"x": {}}),
     r"config key \(top level\): unknown key\(s\) 'optimisation' \(did you mean 'optimisations'\?\)"),
    ("misspelt nested key", _edit("runner.repeat", 3),
     r"config key runner: unknown key\(s\) 'repeat' \(did you mean 'repeats'\?\)"),
    ("misspelt model key", _edit("models.tiny.weight", "w.pth"),
     r"config key models\.tiny: unknown key\(s\) 'weight' \(did you mean 'weights'\?\)"),
    ("wrong type", _edit("runner.repeats", "five"), r"config key runner\.repeats: 'five' is not of type 'integer'"),
    ("wrong type of a port", _edit("devices.cpu.rpc", {"host": "board", "port": "9090"}),
     r"config key devices\.cpu\.rpc\.port: '9090' is not of type 'integer'"),
    ("unknown model arch", _edit("models.tiny.arch", "mobilenet_v9"),
     r"models\.tiny\.arch: unknown architecture 'mobilenet_v9'; known: .*mobilenet_v2"),
    ("model named after no arch", lambda: {**copy.deepcopy(TINY), "models": {"mobilenet": {"input_size": 64}}},
     r"models\.mobilenet \(no arch: the name is used\): unknown architecture 'mobilenet'"),
    ("unknown mutation", _edit("models.tiny.mutants", ["mnn_nope"]),
     r"models\.tiny\.mutants: unknown mutation\(s\) \['mnn_nope'\]"),
    ("unknown mutation operator", _edit("mutations", {"m1": {"operator": "flip_everything"}}),
     r"mutations\.m1\.operator: unknown mutation operator 'flip_everything'"),
    ("unknown device target", _edit("devices.cpu.target", "riscv64"),
     r"devices\.cpu\.target: unknown target 'riscv64'; known: x86_64"),
    ("unknown optimisation pass", _edit("optimisations.default.passes", ["FuseEverything"]),
     r"optimisations\.default\.passes: unknown pass\(es\) \['FuseEverything'\]; known: .*FoldConstant"),
    ("unknown optimisation in mutate_under", _edit("models.tiny.mutate_under", ["extended"]),
     r"models\.tiny\.mutate_under: unknown optimisation\(s\) \['extended'\]"),
    ("misspelt preprocessing field", _edit("models.tiny.preprocessing", {"preset": "tflite", "chanels": "BGR"}),
     r"config key models\.tiny\.preprocessing: .*'chanels'"),
    ("unknown preprocessing preset", _edit("models.tiny.preprocessing", "keras"),
     r"config key models\.tiny\.preprocessing: 'keras' is not one of \['torchvision', 'tflite', 'inception'"),
    ("preprocessing fields that contradict each other", _edit("models.tiny.preprocessing", {"channels": "L"}),
     r"models\.tiny\.preprocessing: mean needs 1 value\(s\) for channels L"),
    ("missing class names file", _edit("models.tiny.labels", "no_such_names.txt"),
     r"models\.tiny\.labels: class names file no_such_names\.txt cannot be read"),
    ("onnx model without a path", _edit("models.tiny", {"source": "onnx"}),
     r"models\.tiny\.path: a model with source 'onnx' needs the path"),
    ("reference outside the frameworks", lambda: {**copy.deepcopy(TINY), "frameworks": ["onnxruntime"],
                                                  "compare": {"reference": "torch"}},
     r"compare\.reference: 'torch' is not one of the study's frameworks"),
    ("missing mutation catalog", _edit("mutation_catalog", "config/nope.yaml"),
     r"mutation_catalog: file .*config/nope\.yaml not found"),
    # mutation specs, checked against each operator's declared parameters before any job runs
    ("misspelt mutation parameter",
     _edit("mutations", {"mine": {"operator": "transpose_input", "ops": ["relax.nn.conv2d"], "inptu": 0}}),
     r"mutations\.mine\.inptu: unknown key\(s\) 'inptu' \(did you mean 'input'\?\)"),
    ("unknown op of a mutation", _edit("mutations", {"mine": {"operator": "insert_unary", "unary": "relax.nosuchop"}}),
     r"mutations\.mine\.unary: unknown op\(s\) \['relax\.nosuchop'\]"),
    ("wrong type of a mutation parameter", _edit("mutations", {"mine": {"operator": "store_scale", "eps": "tiny"}}),
     r"mutations\.mine\.eps: 'tiny' is not of type 'number'"),
    ("mutation level that is not its operator's",
     _edit("mutations", {"mine": {"operator": "cmp_swap", "level": "graph"}}),
     r"mutations\.mine\.level: 'graph' disagrees with operator cmp_swap, whose level is 'kernel'"),
    ("bad value of a mutation parameter", _edit("mutations", {"mine": {"operator": "cast_store", "dtype": "int4"}}),
     r"mutations\.mine\.dtype: cast_store: unsupported dtype 'int4'"),
    ("sweep of an input-level operator", _edit("mutations", {"mine": {"operator": "jpeg", "sites": "each"}}),
     r"mutations\.mine\.sites: a input-level operator has no sites to sweep"),
    ("a name reserved for a sweep's mutants", _edit("mutations", {"m.site3": {"operator": "cmp_swap"}}),
     r"mutations\.m\.site3: names ending in \.site<k> are reserved"),
]


@pytest.mark.parametrize("make, message", [c[1:] for c in PLAN_ERRORS], ids=[c[0] for c in PLAN_ERRORS])
def test_config_loader_names_the_culprit(make, message):
    """The library entry point behind `rules/common.smk`: one ConfigError, one line, the key named."""
    with pytest.raises(ConfigError, match=message) as info:
        load_study(make(), base=REPO)
    assert "\n" not in str(info.value)


# The subset checked through `snakemake -n`, the way a user meets them (each costs a Snakemake start).
PLAN_VIA_SNAKEMAKE = ["misspelt nested key", "wrong type", "unknown model arch", "unknown mutation",
                      "unknown device target", "unknown optimisation pass", "misspelt mutation parameter",
                      "unknown op of a mutation"]


@pytest.mark.slow
@pytest.mark.parametrize("case", PLAN_VIA_SNAKEMAKE)
def test_dry_run_refuses_bad_config_with_one_clear_message(case, tmp_path):
    _, make, message = next(c for c in PLAN_ERRORS if c[0] == case)
    proc = snakemake(tmp_path, make(), "-n", timeout=120)
    assert proc.returncode != 0
    lines = proc.stdout.strip().splitlines()
    # Snakemake names the exception and where it was raised, then gives our message on the next line.
    first = next(i for i, line in enumerate(lines) if line.startswith("ConfigError in file"))
    assert re.search(message, lines[first + 1]), proc.stdout
    assert "Traceback" not in proc.stdout
    assert not (tmp_path / "results").exists()  # nothing ran


# --- bad files, met when a job opens them -------------------------------------------------------------------

def _small_model(tmp_path: Path, small_onnx: Path) -> dict:
    """The small ONNX classifier of tests/conftest.py as a study model (compiles in seconds)."""
    shutil.copy(small_onnx, tmp_path / "small.onnx")
    return {"source": "onnx", "path": "small.onnx"}


def _study(models: dict, images: str, devices: dict, targets: dict) -> dict:
    return {"models": models, "dataset": {"images": images, "labels": None, "limit": None},
            "frameworks": ["onnxruntime"], "compare": {"reference": "onnxruntime"},
            "optimisations": {"default": {"passes": ["DecomposeOpsForInference"]}},
            "targets": targets, "devices": devices,
            "runner": {"warmup": 1, "repeats": 2, "retries": 1, "retry_backoff_s": 0.1, "open_timeout_s": 120}}


def _message_lines(output: str, error: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(error)]


@pytest.mark.slow
def test_bad_model_files_and_an_empty_image_folder_fail_their_jobs_naming_the_file(tmp_path, small_onnx):
    onnx_bytes = small_onnx.read_bytes()
    (tmp_path / "truncated.onnx").write_bytes(onnx_bytes[: len(onnx_bytes) // 2])
    (tmp_path / "not_a_model.pth").write_bytes(b"PK\x03\x04 these bytes were never a torch checkpoint")
    (tmp_path / "empty_folder").mkdir()
    models = {
        "missing_onnx": {"source": "onnx", "path": "missing.onnx"},
        "corrupt_onnx": {"source": "onnx", "path": "truncated.onnx"},
        "missing_weights": {"arch": "squeezenet1_1", "weights": "missing.pth", "input_size": 32},
        "corrupt_weights": {"arch": "squeezenet1_1", "weights": "not_a_model.pth", "input_size": 32},
        "good_zoo": {"arch": "squeezenet1_1", "input_size": 32},
        "small": _small_model(tmp_path, small_onnx),
    }
    config = _study(models, "empty_folder", {"cpu": {"target": "x86_64"}}, {"x86_64": {"kind": "llvm"}})
    exports = [f"results/{m}/export/model.onnx" for m in models]
    proc = snakemake(tmp_path, config, "--keep-going", *exports, "results/small/data/inputs.npz")
    assert proc.returncode != 0

    # A job that meets bad input prints one line naming the culprit; the traceback stays in its log.
    errors = _message_lines(proc.stdout, "deltamut: ")
    assert any(e.endswith("ONNX file missing.onnx does not exist") for e in errors), proc.stdout
    assert any("ONNX file truncated.onnx is not a valid ONNX model" in e for e in errors), proc.stdout
    assert any(e.endswith("weights file missing.pth does not exist") for e in errors), proc.stdout
    assert any("weights file not_a_model.pth cannot be read as a PyTorch state dict" in e for e in errors), \
        proc.stdout
    assert any("image folder empty_folder holds no readable image" in e for e in errors), proc.stdout
    # Every failed job points at its log, and the log holds the same message. The first job to open an ONNX
    # file is its dataset's (the export checks the prepared file on the study's images); a zoo model's is its
    # export.
    for model, rule in (("missing_onnx", "dataset"), ("corrupt_onnx", "dataset"), ("missing_weights", "export"),
                        ("corrupt_weights", "export")):
        log = tmp_path / f"results/logs/{rule}/{model}.log"
        assert f"log: results/logs/{rule}/{model}.log" in proc.stdout
        assert "ModelError: " in log.read_text()
    # The good zoo model's export is unaffected by the others' failures, no bad model left an output, and the
    # good ONNX file waits for images it cannot have.
    assert (tmp_path / "results/good_zoo/export/model.onnx").stat().st_size > 0
    for model in ("missing_onnx", "corrupt_onnx", "missing_weights", "corrupt_weights", "small"):
        assert not (tmp_path / f"results/{model}/export/model.onnx").exists()


# --- findings, not mistakes: the study completes and records them ------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_unreadable_images_unreachable_board_and_wrong_cpu_are_recorded_and_the_study_completes(
        tmp_path, small_onnx, labelled_photos):
    photos, _ = labelled_photos
    images = tmp_path / "images"
    shutil.copytree(photos, images)
    (images / "notes.txt").write_text("not an image\n")
    real = next(p for p in sorted(images.iterdir()) if p.suffix == ".jpg")
    (images / "broken.jpg").write_bytes(real.read_bytes()[:200])  # a header and nothing else
    port = _closed_port()
    devices = {"cpu": {"target": "x86_64"},
               "board": {"target": "x86_64", "rpc": {"host": "127.0.0.1", "port": port}, "connect_timeout_s": 2},
               "arm_here": {"target": "aarch64"}}
    targets = {"x86_64": {"kind": "llvm"}, "aarch64": AARCH64}
    config = _study({"small": _small_model(tmp_path, small_onnx)}, "images", devices, targets)
    proc = snakemake(tmp_path, config, "--keep-going")
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = tmp_path / "results/small"

    manifest = json.loads((results / "data/dataset.json").read_text())
    skipped = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert set(skipped) == {"broken.jpg", "notes.txt"}
    assert all(skipped.values())
    assert manifest["count"] == 3 and not set(manifest["ids"]) & set(skipped)

    def outputs(device: str) -> dict:
        with np.load(results / f"tvm/default/original/infer/{device}/outputs.npz") as z:
            return {k: z[k] for k in z.files}

    cpu = outputs("cpu")
    assert list(cpu["status"]) == ["ok"] * 3 and np.isfinite(cpu["logits"]).all()

    board = outputs("board")
    assert set(board["status"]) == {"error"}
    assert all(f"127.0.0.1:{port}" in e and "unreachable" in e for e in board["error"])
    events = json.loads(str(board["meta"]))["events"]
    assert [e["attempt"] for e in events if e["event"] == "open_failed"] == [1, 2]  # retries: 1

    arm = outputs("arm_here")
    why = check_device_target("arm_here", {"target": "aarch64"}, AARCH64)
    assert why and "aarch64-linux-gnu" in why
    assert set(arm["status"]) == {"error"} and set(arm["error"]) == {why}

    # The compare stage graded all three devices instead of stopping at the failed ones.
    per_pair = (results / "compare/per_pair.csv").read_text()
    assert "tvm/default/original/board" in per_pair and "tvm/default/original/arm_here" in per_pair
