"""A user's own ONNX classifiers through the whole study, from a study file that names only the models and the
images: a dynamic `[n, 3, h, w]` input (from the legacy and the dynamo exporter), a reshape whose target is
computed at run time (which TVM 0.27 cannot import as given), a non-square input, BGR channels in [0, 1], a
channels-last input, and two classes with a names file and photos filed in folders named by class. The
sections left out take the schema's defaults (three optimisations, the host CPU); every runtime's outputs on
the study's own images must agree with PyTorch's for the same network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import skimage.data
import torch
import yaml
from PIL import Image

from deltamut import paths
from deltamut.export.onnx_prepare import prepared_record
from deltamut.outcome import Status
from deltamut.runner.outputs import load_outputs
from deltamut.study import variant_id
from tests import user_models

REPO = Path(__file__).resolve().parents[2]
SIZE = 24
WIDE = (16, 40)
OPTIMISATIONS = ("basic", "default", "extended")
# torchvision's normalisation written the BGR, [0, 1] way (as OpenCV-trained models state it)
BGR_UNIT = {"channels": "BGR", "scale": 1 / 255, "mean": [0.406, 0.456, 0.485], "std": [0.225, 0.224, 0.229]}
PHOTOS = {"cat/chelsea.png": skimage.data.chelsea, "cup/coffee.png": skimage.data.coffee,
          "other/rocket.png": skimage.data.rocket}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    work = tmp_path_factory.mktemp("own")
    for name, photo in PHOTOS.items():
        (work / "images" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo()).save(work / "images" / name)
    (work / "names.txt").write_text("cat\ncup\n")
    net, two = user_models.classifier(), user_models.classifier(seed=1, classes=2)
    user_models.export_dynamic(net, work / "dynamic.onnx", (SIZE, SIZE))
    user_models.export_dynamic(net, work / "dynamo.onnx", (SIZE, SIZE), dynamo=True)
    user_models.export_dynamic(user_models.ChannelsLast(net), work / "nhwc.onnx", (SIZE, SIZE), channels_last=True)
    user_models.export_dynamic(two, work / "two.onnx", (SIZE, SIZE))
    onnx.save(user_models.shape_subgraph_model(net), str(work / "shape_subgraph.onnx"))
    models = {"dynamic": {"source": "onnx", "path": "dynamic.onnx", "input_shape": SIZE},
              "dynamo": {"source": "onnx", "path": "dynamo.onnx", "input_shape": SIZE},
              "shape_subgraph": {"source": "onnx", "path": "shape_subgraph.onnx", "input_shape": [SIZE, SIZE]},
              "wide": {"source": "onnx", "path": "dynamic.onnx", "input_shape": list(WIDE)},
              "bgr_unit": {"source": "onnx", "path": "dynamic.onnx", "input_shape": SIZE, "preprocessing": BGR_UNIT},
              "nhwc": {"source": "onnx", "path": "nhwc.onnx", "input_shape": SIZE},
              "two_classes": {"source": "onnx", "path": "two.onnx", "input_shape": SIZE, "labels": "names.txt"}}
    study = {"models": models, "dataset": {"images": "images", "labels": None}}
    (work / "study.yaml").write_text(yaml.safe_dump(study))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
                           "study.yaml", "-d", str(work), "--cores", "2"], cwd=work, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return work, {"dynamic": net, "dynamo": net, "shape_subgraph": net, "wide": net, "bgr_unit": net,
                  "nhwc": user_models.ChannelsLast(net), "two_classes": two}


def _inputs(work: Path, model: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(work / paths.fill(paths.INPUTS, model=model)) as z:
        return z["x"], z["labels"]


SHAPES = {"dynamic": (3, 3, SIZE, SIZE), "dynamo": (3, 3, SIZE, SIZE), "shape_subgraph": (3, 3, SIZE, SIZE),
          "wide": (3, 3, *WIDE), "bgr_unit": (3, 3, SIZE, SIZE), "nhwc": (3, SIZE, SIZE, 3),
          "two_classes": (3, 3, SIZE, SIZE)}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(SHAPES))
def test_every_runtime_agrees_with_pytorch_on_the_study_images(study, model):
    work, nets = study
    images, _ = _inputs(work, model)
    assert images.shape == SHAPES[model]
    with torch.no_grad():
        expected = nets[model](torch.from_numpy(images)).numpy()
    results = {"onnxruntime": paths.fill(paths.REFERENCE, model=model, framework="onnxruntime")}
    results |= {variant_id(opt, "original", "cpu"): paths.fill(paths.OUTPUTS, model=model, opt=opt,
                                                                 mutant="original", device="cpu")
                for opt in OPTIMISATIONS}
    for name, path in results.items():
        out = load_outputs(work / path)
        assert (out.status == Status.OK.value).all(), (name, out.status)
        np.testing.assert_allclose(out.logits, expected, atol=1e-4, err_msg=name)


@pytest.mark.slow
def test_bgr_unit_scale_and_channels_last_inputs_are_the_rgb_tensor_rearranged(study):
    work, _ = study
    rgb, _ = _inputs(work, "dynamic")
    np.testing.assert_allclose(_inputs(work, "bgr_unit")[0], rgb[:, ::-1], atol=1e-5)
    assert np.array_equal(_inputs(work, "nhwc")[0], rgb.transpose(0, 2, 3, 1))


@pytest.mark.slow
def test_two_classes_read_by_their_names_from_folders_to_tables(study):
    work, _ = study
    assert _inputs(work, "two_classes")[1].tolist() == [0, 1, -1]  # cat/, cup/, other/
    assert _inputs(work, "dynamic")[1].tolist() == [-1, -1, -1]  # a 5-class model has no class "cat"
    per_image = pd.read_parquet(work / paths.table("per_image", "parquet", "two_classes"))
    assert per_image.groupby("image")["label_name"].first().to_dict() == {
        "cat/chelsea.png": "cat", "cup/coffee.png": "cup", "other/rocket.png": ""}
    assert set(per_image["class_a"]) <= {"cat", "cup"} and set(per_image["class_b"]) <= {"cat", "cup"}
    manifest = yaml.safe_load((work / paths.fill(paths.DATASET, model="two_classes")).read_text())
    assert manifest["classes"] == ["cat", "cup"]


@pytest.mark.slow
def test_the_export_artifact_is_the_fixed_and_folded_graph(study):
    work, _ = study
    for model in ("dynamic", "dynamo", "shape_subgraph"):
        artifact = work / paths.fill(paths.ONNX, model=model)
        dims = [d.dim_value for d in onnx.load(str(artifact)).graph.input[0].type.tensor_type.shape.dim]
        record = prepared_record(artifact)
        assert dims == [1, 3, SIZE, SIZE] and record["folded"], (model, dims, record)
        assert record["fold_check"]["images"] == 3
    ops = {n.op_type for n in onnx.load(str(work / paths.fill(paths.ONNX, model="shape_subgraph"))).graph.node}
    assert not {"Shape", "Cast", "Slice", "Concat"} & ops, ops
