"""`make own`: the study file it writes names only the model and the images, and plans as a whole study."""

from __future__ import annotations

import yaml

from deltamut.config import load_study
from deltamut.own_model import main, model_name, own_study
from tests import user_models


def test_the_study_file_is_the_model_and_the_images_and_plans_with_the_defaults(tmp_path):
    study = own_study(tmp_path / "my model.onnx", tmp_path / "photos", [48, 48])
    assert set(study) == {"models", "dataset"}
    assert study["models"] == {"my_model": {"source": "onnx", "path": str(tmp_path / "my model.onnx"),
                                            "input_shape": [48, 48]}}
    assert model_name("a/b/resnet-50 v2.onnx") == "resnet-50_v2"
    study = own_study(tmp_path / "m.onnx", tmp_path / "photos", [48, 192], classes=tmp_path / "names.txt",
                      preprocessing="paddle-cls")
    assert study["models"]["m"] == {"source": "onnx", "path": str(tmp_path / "m.onnx"), "input_shape": [48, 192],
                                    "preprocessing": "paddle-cls", "labels": str(tmp_path / "names.txt")}


def test_make_own_plans_a_study_of_one_onnx_file(tmp_path, monkeypatch, labelled_photos):
    """A dry run from a fresh directory: the study file is written, and Snakemake plans the three default
    optimisations of the file on the host CPU."""
    net = user_models.classifier()
    onnx_path = user_models.export_dynamic(net, tmp_path / "mine.onnx", (24, 24))
    photos, _ = labelled_photos
    monkeypatch.chdir(tmp_path)
    assert main([str(onnx_path), str(photos), "--input-shape", "24", "-n"]) == 0
    written = yaml.safe_load((tmp_path / "results/own/mine.yaml").read_text())
    assert set(written) == {"models", "dataset"} and written["models"]["mine"]["input_shape"] == 24
    plan = load_study(written)
    assert list(plan.optimisations) == ["basic", "default", "extended"] and list(plan.devices) == ["cpu"]
