"""The real workflow on a tiny study: every stage, the tables, the kill matrix, incremental reruns."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deltamut.failure import read_failure
from deltamut.runner import load_outputs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2"]


def study(photos: Path, labels: Path, mnn11_sites="all") -> dict:
    return {
        "models": {"tiny": {"source": "zoo", "arch": "mobilenet_v2", "input_size": 64, "seed": 0,
                            "mutants": ["mnn11_relu_to_sigmoid", "mnn21_gt_to_lt", "twin_of_mnn11"],
                            "mutate_under": ["default"]}},
        "dataset": {"images": str(photos), "labels": str(labels)},
        "mutation_catalog": str(REPO / "config" / "mutations.yaml"),
        "mutations": {"mnn11_relu_to_sigmoid": {"operator": "replace_op", "from": "pattern.relu6",
                                                "to": "relax.sigmoid", "sites": mnn11_sites},
                      # the same mutation under another name: a duplicate, never built
                      "twin_of_mnn11": {"operator": "replace_op", "from": "pattern.relu6", "to": "relax.sigmoid"}},
        "optimisations": {"basic": {"fuse": False, "llvm": {"opt-level": 1}},
                          "default": {"passes": ["DecomposeOpsForInference"]}},
        "targets": {"x86_64": {"kind": "llvm"}},
        "devices": {"cpu": {"target": "x86_64"}},
        "runner": {"warmup": 1, "repeats": 2},
        # DeltaNN's conversions: the legacy ONNX exporter (ONNX Runtime only) and torch.export into TVM
        "conversions": {"legacy-opset13": {"exporter": "legacy", "opset": 13, "compile_under": []},
                        "torch-export": {"exporter": "torch.export", "compile_under": ["basic"]}},
        # basic without constant folding, and at LLVM -O0 instead of -O1
        "ablation": {"of": "basic"},
    }


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "-d", str(workdir), "--configfile", str(workdir / "study.yaml"), *args],
                          capture_output=True, text=True, cwd=workdir, timeout=900)


def planned_jobs(dry_run_stdout: str) -> dict[str, int]:
    """The job counts of `snakemake -n`'s 'Job stats' table."""
    table = dry_run_stdout.split("Job stats:")[1].split("\n\n")[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, labelled_photos):
    workdir = tmp_path_factory.mktemp("study")
    photos, labels = labelled_photos
    (workdir / "study.yaml").write_text(yaml.safe_dump(study(photos, labels)))
    run = snakemake(workdir)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


def test_tables_cover_every_pair(finished):
    pairs = pd.read_parquet(finished / "results/tiny/compare/per_pair.parquet")
    kinds = pairs.groupby("kind").size().to_dict()
    assert kinds == {"framework": 2, "compiler": 3, "optimisation": 1, "mutant": 3, "precision": 1,
                     "conversion": 2, "ablation": 2}
    ablation = pairs[pairs.kind == "ablation"].set_index("a")
    assert set(ablation.index) == {"tvm/basic.no-fold_constants/original/cpu", "tvm/basic.no-llvm-opt/original/cpu"}
    assert (ablation.b == "tvm/basic/original/cpu").all() and (ablation.top1_disagreement_pct == 0).all()
    # every latency verdict comes from one timing group's interleaved rounds; the float64 baseline is not timed
    timed = pairs[pairs.kind != "precision"]
    assert set(timed.latency_group) == {"main-cpu", "mutants-default-cpu-0"}
    # the equivalent mutants (mnn21 on this model, the twin) were never built: not timed, said so, no verdict
    equivalent = timed.a.isin(["tvm/default/mnn21_gt_to_lt/cpu", "tvm/default/twin_of_mnn11/cpu"])
    assert (timed[equivalent].latency_verdict == "unknown").all()
    assert timed[equivalent].latency_caveat.str.contains("equivalent").all()
    ran = timed[~equivalent]
    # 30 rounds, less any that a burst of load still disturbed on either side after its retakes
    assert ran.latency_rounds.between(15, 30).all() and ran.latency_ratio.notna().all() and ran.latency_p.notna().all()
    assert pairs.loc[pairs.kind == "precision", "latency_verdict"].item() == "not_timed"
    twin = yaml.safe_load((finished / "results/tiny/timing/mutants-default-cpu-0.json").read_text())
    assert twin["members"]["tvm/default/twin_of_mnn11/cpu"]["status"] == "equivalent"  # never built: not timed
    # -O0 changes only code generation: its deploy job builds basic's graph and lowered module (its inputs point
    # at them), so neither is rebuilt nor copied
    ablated = finished / "results/tiny/tvm/basic.no-llvm-opt"
    assert not (ablated / "graph.json").exists() and not (ablated / "original/module.json").exists()
    deploy = yaml.safe_load((ablated / "original/deploy/x86_64/deploy.json").read_text())
    assert deploy["status"] == "ok" and deploy["codegen"]["llvm"]["opt-level"] == 0
    # each conversion reaches its runtime and agrees with the primary ONNX on the same runtime
    conversion = pairs[pairs.kind == "conversion"].set_index("a")
    assert set(conversion.index) == {"onnxruntime@legacy-opset13", "tvm@torch-export/basic/original/cpu"}
    assert (conversion.b == ["onnxruntime", "tvm/basic/original/cpu"]).all()
    assert (conversion.top1_disagreement_pct == 0).all() and (conversion.max_abs_err < 1e-3).all()
    assert (finished / "results/tiny@torch-export/export/program.pt2").is_file()
    # float32 against float64 PyTorch: the noise floor, nonzero but tiny; every variant gets its RMSE
    precision = pairs[pairs.kind == "precision"].iloc[0]
    assert 0 < precision.max_abs_err < 1e-3 and precision.b == "torch64"
    assert pairs.loc[pairs.kind == "compiler", "rmse_vs_float64_a"].between(0, 1e-3, inclusive="neither").all()
    compiler = pairs[pairs.kind == "compiler"]
    # The unmutated TVM builds agree with PyTorch on every photo, to float32 rounding.
    assert (compiler.top1_disagreement_pct == 0).all() and (compiler.max_abs_err < 1e-3).all()
    assert (compiler.n_labelled == 3).all() and compiler.accuracy_a.notna().all()
    assert set(compiler.tvm_a) == {"0.27.0.post1"}
    per_image = pd.read_csv(finished / "results/tiny/compare/per_image.csv")
    assert len(per_image) == 3 * len(pairs)
    assert set(per_image.image) == {"skimage_coffee.png", "skimage_chelsea.png", "matplotlib_grace_hopper.jpg"}
    assert "tiny" in (finished / "results/summary.md").read_text()


def test_outputs_keep_raw_logits_and_provenance(finished):
    out = load_outputs(finished / "results/tiny/tvm/default/original/infer/cpu/outputs.npz")
    assert out.logits.shape == (3, 1000) and list(out.status) == ["ok"] * 3
    assert out.latency_ms.shape == (3, 2) and np.all(out.latency_ms > 0)
    assert np.all(out.repeat_spread == 0)  # TVM on the CPU is deterministic
    assert out.meta["device"] == "cpu" and "llvm" in out.meta["deploy"]["target"]
    assert out.meta["versions"]["torch"].startswith("2.13.0")


def _sigmoid_changes_a_label(workdir: Path) -> bool:
    """PyTorch's answer for mnn11 on this study: does MobileNetV2 with every ReLU6 a sigmoid change the top-1
    label of one of the study's own inputs?"""
    import torch
    from torch import nn

    from deltamut.models import load_model

    with np.load(workdir / "results/tiny/data/inputs.npz") as z:
        x = torch.from_numpy(z["x"])
    model = load_model("tiny", {"arch": "mobilenet_v2", "input_size": 64, "seed": 0}).module
    with torch.no_grad():
        before = model(x).argmax(1)
        for module in list(model.modules()):
            for name, child in list(module.named_children()):
                if isinstance(child, nn.ReLU6):
                    setattr(module, name, nn.Sigmoid())
        return bool((model(x).argmax(1) != before).any())


def test_kill_matrix_and_equivalent_mutant(finished):
    matrix = pd.read_csv(finished / "results/tiny/compare/kill_matrix.csv").set_index("mutant")
    assert matrix.loc["mnn21_gt_to_lt", "status"] == "equivalent"  # no `>` guard in lowered kernels
    # mnn11 is killed exactly when the same mutant built in PyTorch changes a label
    assert matrix.loc["mnn11_relu_to_sigmoid", "status"] == ("killed" if _sigmoid_changes_a_label(finished)
                                                              else "survived")
    assert matrix.loc["mnn11_relu_to_sigmoid", "applied"] > 0
    deploy = yaml.safe_load((finished / "results/tiny/tvm/default/mnn21_gt_to_lt/deploy/x86_64/deploy.json")
                            .read_text())
    assert deploy["status"] == "equivalent"  # recorded, never built
    out = load_outputs(finished / "results/tiny/tvm/default/mnn21_gt_to_lt/infer/cpu/outputs.npz")
    assert set(out.status) == {"equivalent"}
    twin = yaml.safe_load((finished / "results/tiny/tvm/default/twin_of_mnn11/deploy/x86_64/deploy.json")
                          .read_text())
    assert twin["status"] == "equivalent" and twin["duplicate_of"] == "mnn11_relu_to_sigmoid"
    assert read_failure(finished / "results/tiny/tvm/default/twin_of_mnn11/deploy/x86_64/lib.so")  # no library
    assert matrix.loc["twin_of_mnn11", "status"] == "duplicate"
    assert matrix.loc["twin_of_mnn11", "duplicate_of"] == "mnn11_relu_to_sigmoid"
    diff = (finished / "results/tiny/tvm/default/mnn11_relu_to_sigmoid/diff.txt").read_text()
    assert "sigmoid" in diff and diff.startswith("--- original/ir.txt")


# The per-image columns that are timings: measured anew by every run, sharded or not.
TIMED = {"latency_a_ms", "latency_b_ms"}


def test_sharded_study_gives_the_unsharded_tables(finished, tmp_path):
    """dataset.shard_size 2 on the 3 photos: two shards (2 + 1 images) per dataset, reference and infer job,
    and compare reads them back into the unsharded study's tables. Nothing else reruns: export, compile,
    mutate and deploy do not depend on how the images are cut."""
    sharded = tmp_path / "sharded"
    shutil.copytree(finished, sharded, symlinks=True)
    config = yaml.safe_load((sharded / "study.yaml").read_text())
    config["dataset"]["shard_size"] = 2
    (sharded / "study.yaml").write_text(yaml.safe_dump(config))
    plan = snakemake(sharded, "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    jobs = planned_jobs(plan.stdout)
    assert set(jobs) == {"dataset", "reference", "infer", "timing", "compare", "plots", "summary", "all"}
    assert jobs["dataset"] == 2 and jobs["infer"] % 2 == 0
    run = snakemake(sharded)
    assert run.returncode == 0, run.stderr[-4000:]
    assert sorted(p.name for p in (sharded / "results/tiny/data").glob("inputs*.npz")) == \
        ["inputs.npz", "inputs.shard0.npz", "inputs.shard1.npz"]  # the unsharded file is the copy's, left alone
    for table in ("per_image", "per_pair", "kill_matrix", "mutation_scores"):
        whole = pd.read_parquet(finished / f"results/tiny/compare/{table}.parquet")
        cut = pd.read_parquet(sharded / f"results/tiny/compare/{table}.parquet")
        timed = [c for c in whole.columns if c in TIMED or "latency" in c]
        pd.testing.assert_frame_equal(cut.drop(columns=timed), whole.drop(columns=timed))
    shards = load_outputs([sharded / f"results/tiny/tvm/default/original/infer/cpu/outputs.shard{k}.npz"
                           for k in (0, 1)])
    whole = load_outputs(finished / "results/tiny/tvm/default/original/infer/cpu/outputs.npz")
    np.testing.assert_array_equal(shards.ids, whole.ids)
    np.testing.assert_array_equal(shards.logits, whole.logits)


def test_editing_one_mutation_reruns_only_its_jobs(finished, labelled_photos):
    nothing = snakemake(finished, "-n")
    assert "Nothing to be done" in nothing.stdout + nothing.stderr
    photos, labels = labelled_photos
    (finished / "study.yaml").write_text(yaml.safe_dump(study(photos, labels, mnn11_sites=[[0, 2]])))
    plan = snakemake(finished, "-n")
    assert plan.returncode == 0, plan.stderr[-3000:]
    # mnn11's jobs and the index of its optimisation's mutants; nothing of the other mutants
    assert planned_jobs(plan.stdout) == {"mutate": 1, "mutant_index": 1, "deploy": 1, "infer": 1, "timing": 1,
                                         "compare": 1, "plots": 1, "summary": 1, "all": 1}
    assert "results/tiny/tvm/default/mnn11_relu_to_sigmoid/module.json" in plan.stdout
