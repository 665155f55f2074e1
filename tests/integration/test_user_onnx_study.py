"""A user's own ONNX classifiers through the whole study, from a study file that names only the models and the
images: a dynamic `[n, 3, h, w]` input, and a reshape whose target is computed at run time (which TVM 0.27
cannot import as given). The sections left out take the schema's defaults (three optimisations, the host
CPU); every runtime's outputs on the study's own images must agree with PyTorch's for the same network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml

from deltamut import paths
from deltamut.export.onnx_prepare import prepared_record
from deltamut.outcome import Status
from deltamut.runner.outputs import load_outputs
from deltamut.study import variant_id
from tests import user_models

REPO = Path(__file__).resolve().parents[2]
SIZE = 24
OPTIMISATIONS = ("basic", "default", "extended")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    work = tmp_path_factory.mktemp("own")
    net = user_models.classifier()
    user_models.export_dynamic(net, work / "dynamic.onnx", (SIZE, SIZE))
    onnx.save(user_models.shape_subgraph_model(net), str(work / "shape_subgraph.onnx"))
    models = {"dynamic": {"source": "onnx", "path": "dynamic.onnx", "input_shape": SIZE},
              "shape_subgraph": {"source": "onnx", "path": "shape_subgraph.onnx", "input_shape": [SIZE, SIZE]}}
    study = {"models": models, "dataset": {"images": "default", "labels": None, "limit": 3}}
    (work / "study.yaml").write_text(yaml.safe_dump(study))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
                           "study.yaml", "-d", str(work), "--cores", "2"], cwd=work, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return work, net


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dynamic", "shape_subgraph"])
def test_every_runtime_agrees_with_pytorch_on_the_study_images(study, model):
    work, net = study
    with np.load(work / paths.fill(paths.INPUTS, model=model)) as z:
        images = z["x"]
    assert images.shape == (3, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = net(torch.from_numpy(images)).numpy()
    results = {"onnxruntime": paths.fill(paths.REFERENCE, model=model, framework="onnxruntime")}
    results |= {variant_id(opt, "original", "cpu"): paths.fill(paths.OUTPUTS, model=model, opt=opt,
                                                                 mutant="original", device="cpu")
                for opt in OPTIMISATIONS}
    for name, path in results.items():
        out = load_outputs(work / path)
        assert (out.status == Status.OK.value).all(), (name, out.status)
        np.testing.assert_allclose(out.logits, expected, atol=1e-4, err_msg=name)


@pytest.mark.slow
def test_the_export_artifact_is_the_fixed_and_folded_graph(study):
    work, _ = study
    for model in ("dynamic", "shape_subgraph"):
        artifact = work / paths.fill(paths.ONNX, model=model)
        dims = [d.dim_value for d in onnx.load(str(artifact)).graph.input[0].type.tensor_type.shape.dim]
        record = prepared_record(artifact)
        assert dims == [1, 3, SIZE, SIZE] and record["folded"], (model, dims, record)
        assert record["fold_check"]["images"] == 3
    ops = {n.op_type for n in onnx.load(str(work / paths.fill(paths.ONNX, model="shape_subgraph"))).graph.node}
    assert not {"Shape", "Cast", "Slice", "Concat"} & ops, ops
