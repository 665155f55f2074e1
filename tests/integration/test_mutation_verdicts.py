"""End to end on a real pretrained model: the kill matrix gives the verdicts that are known in advance.

EfficientNet-Lite0 (ImageNet weights) on three labelled photos, through the whole workflow, with mutants whose
fate follows from what they do, checked against PyTorch where it can be computed there:

- `mnn11_relu_to_sigmoid` (every ReLU6 a sigmoid) is killed: PyTorch with the same swap changes a label;
- `classifier_blocked` (every output neuron of the classifier zeroed: logits = bias) is killed: PyTorch says
  the bias's argmax is not every photo's label;
- `tiny_scale` (every stored float32 value times 1 + 2**-20) survives: 35 kernels compound a relative change of
  about 4e-5, two orders below the smallest top-1 margin of a pretrained classifier on real photos, and it
  is not equivalent (its outputs move); `tiny_scale_twin` is the same spec under another name: a duplicate;
- `mnn21_gt_to_lt` is equivalent: lowered TVM 0.27 kernels hold no `>`;
- under `no-legalize`, an optimisation that disables LegalizeOps, TVM cannot build the original (CodeGenVM
  cannot emit un-lowered Relax operators): every mutant that would be built is `not_comparable`, never
  crashed or killed, and that column has no mutation score.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from deltamut.defaults import section_default

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXTENDED = section_default("optimisations")["extended"]
MUTANTS = ["mnn11_relu_to_sigmoid", "classifier_blocked", "tiny_scale", "tiny_scale_twin", "mnn21_gt_to_lt"]


def _study(photos: Path, labels: Path) -> dict:
    tiny = {"operator": "store_scale", "eps": 2.0**-20}
    return {
        "models": {"lite0": {"source": "zoo", "arch": "efficientnet_lite0", "mutants": MUTANTS,
                             "mutate_under": ["fast", "no-legalize"]}},
        "dataset": {"images": str(photos), "labels": str(labels)},
        "mutation_catalog": str(REPO / "config" / "mutations.yaml"),
        # the classifier is the last of Lite0's 50 weight layers (49 convs, then the linear layer)
        "mutations": {"classifier_blocked": {"operator": "neuron_effect_block", "fraction": 1.0, "sites": [[49, 49]]},
                      "tiny_scale": tiny, "tiny_scale_twin": dict(tiny)},
        "optimisations": {"fast": EXTENDED, "no-legalize": {"disabled_pass": ["LegalizeOps"]}},
        "targets": {"x86_64": {"kind": "llvm"}},
        "devices": {"cpu": {"target": "x86_64"}},
        "runner": {"warmup": 1, "repeats": 1},
        "localise": {"mutants": ["mnn11_relu_to_sigmoid", "classifier_blocked"]},
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory, labelled_photos) -> Path:
    workdir = tmp_path_factory.mktemp("verdicts")
    (workdir / "study.yaml").write_text(yaml.safe_dump(_study(*labelled_photos)))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                          "--configfile", str(workdir / "study.yaml"), "--cores", "2"],
                         capture_output=True, text=True, cwd=workdir, timeout=1500)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def pytorch_labels(finished) -> dict[str, np.ndarray]:
    """Top-1 labels of the original and of two mutants computed in PyTorch, on the study's own inputs."""
    from deltamut.models import load_model

    with np.load(finished / "results/lite0/data/inputs.npz") as z:
        x = torch.from_numpy(z["x"])
    model = load_model("lite0", {"source": "zoo", "arch": "efficientnet_lite0"}).module
    bias = [m for m in model.modules() if isinstance(m, nn.Linear)][-1].bias.detach().numpy()  # the classifier's
    with torch.no_grad():
        original = model(x).argmax(1).numpy()
        for child in list(model.modules()):
            for attr, sub in list(child.named_children()):
                if isinstance(sub, nn.ReLU6):
                    setattr(child, attr, nn.Sigmoid())
        sigmoid = model(x).argmax(1).numpy()
    return {"original": original, "sigmoid": sigmoid, "bias_argmax": np.full(len(original), bias.argmax())}


def _matrix(finished: Path) -> pd.DataFrame:
    return pd.read_parquet(finished / "results/lite0/compare/kill_matrix.parquet").set_index(["opt", "mutant"])


def test_mutants_known_to_change_labels_are_killed(finished, pytorch_labels):
    # what PyTorch says of the same mutants: each changes at least one photo's label
    assert (pytorch_labels["sigmoid"] != pytorch_labels["original"]).any()
    assert (pytorch_labels["bias_argmax"] != pytorch_labels["original"]).any()
    fast = _matrix(finished).loc["fast"]
    assert fast.loc["mnn11_relu_to_sigmoid", "status"] == "killed"
    assert fast.loc["classifier_blocked", "status"] == "killed"
    # and the pipeline's own labels of the original are PyTorch's
    per_image = pd.read_parquet(finished / "results/lite0/compare/per_image.parquet")
    compiler = per_image[(per_image.kind == "compiler") & (per_image.opt_a == "fast")]
    assert compiler["top1_a"].tolist() == pytorch_labels["original"].tolist()


def test_a_mutant_below_every_margin_survives_and_its_twin_is_a_duplicate(finished):
    fast = _matrix(finished).loc["fast"]
    assert fast.loc["tiny_scale", "status"] == "survived"
    assert 0 < fast.loc["tiny_scale", "max_abs_err"] < 1e-2  # it did change the logits, a little
    assert fast.loc["tiny_scale_twin", "status"] == "duplicate"
    assert fast.loc["tiny_scale_twin", "duplicate_of"] == "tiny_scale"


def test_a_mutant_without_a_site_is_equivalent(finished):
    assert _matrix(finished).loc[("fast", "mnn21_gt_to_lt"), "status"] == "equivalent"


def test_mutants_of_an_original_that_cannot_be_built_are_not_comparable(finished):
    broken = _matrix(finished).loc["no-legalize"]
    assert broken.loc["mnn11_relu_to_sigmoid", "status"] == "not_comparable"
    assert broken.loc["classifier_blocked", "status"] == "not_comparable"
    assert broken.loc["mnn21_gt_to_lt", "status"] == "equivalent"  # a property of its code, known without a run
    assert broken.loc["tiny_scale_twin", "status"] == "duplicate"
    assert not broken["status"].isin(["killed", "crashed", "survived"]).any()
    pairs = pd.read_parquet(finished / "results/lite0/compare/per_pair.parquet")
    original = pairs[(pairs.kind == "compiler") & (pairs.opt_a == "no-legalize")].iloc[0]
    assert original["failed_stage_a"] == "deploy" and original["verdict"] == "error"
    scores = pd.read_parquet(finished / "results/lite0/compare/mutation_scores.parquet")
    by_opt = scores[scores.by == "category"].groupby("opt")["score"]
    assert by_opt.apply(lambda s: s.isna().all())["no-legalize"]  # nothing scored: no finding claimed
    assert by_opt.max()["fast"] == 1.0


def _profile(finished: Path, opt: str, mutant: str) -> dict:
    return json.loads((finished / f"results/lite0/tvm/{opt}/{mutant}/localise/cpu/profile.json").read_text())


def test_localisation_names_where_each_killed_mutant_starts(finished):
    # the classifier's weights zeroed: the same kernels run on other constants, so the first output that
    # departs is the root, and it is the last layer's (the ONNX Gemm, the model's last node)
    blocked = _profile(finished, "fast", "classifier_blocked")
    assert blocked["status"] == "ok" and blocked["confirmed"]["holds"], blocked.get("reason")
    assert (blocked["root_by"], blocked["root_onnx_op_type"]) == ("propagated", "Gemm")
    assert blocked["root_index"] == blocked["growth"][-1]["index"]
    # every ReLU6 a sigmoid: the first kernel, the stem's conv + batch norm + ReLU6 (the ONNX Clip that the
    # original's first kernel computes), is another kernel in the mutant (a fused sigmoid, with fewer arguments)
    sigmoid = _profile(finished, "fast", "mnn11_relu_to_sigmoid")
    assert sigmoid["status"] == "ok" and sigmoid["confirmed"]["holds"], sigmoid.get("reason")
    assert (sigmoid["root_by"], sigmoid["root_index"], sigmoid["root_onnx_op_type"]) == ("other kernel", 0, "Clip")
    assert sigmoid["root_mutant_kernel"].endswith("sigmoid")
    assert all(g["propagated_rel"] is not None for g in sigmoid["growth"])  # the builds line up call by call
    # named mode (every ONNX tensor an output of both builds) names the same layers by construction: the
    # model's last node for the zeroed classifier, the stem's Clip (the file's first Clip) for the sigmoid;
    # the marked builds' mutations are the mutants' own, site for site, and the flips survive the marking
    import onnx

    nodes = onnx.load(str(finished / "results/lite0/export/model.onnx")).graph.node
    first_clip = next(n.name for n in nodes if n.op_type == "Clip")
    for profile, node in ((blocked, nodes[-1].name), (sigmoid, first_clip)):
        named = profile["named"]
        assert named["status"] == "ok" and named["sites_match"] and not named["vanished"], named.get("reason")
        assert named["root_node"] == node and named["root_images"] == len(named["per_image"])
    # a mutant without a library of its own is not probed, and says why
    assert _profile(finished, "no-legalize", "classifier_blocked")["status"] == "not_probed"
    summary = (finished / "results/summary.md").read_text()
    assert "## Localisation" in summary and "classifier_blocked" in summary.split("## Localisation")[1]
    assert (finished / "results/lite0/tvm/fast/classifier_blocked/localise/cpu/growth.png").stat().st_size > 0
