"""Shared fixtures: a small real CNN exported to ONNX, and real photos with known labels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TVM_NUM_THREADS", str(os.cpu_count() or 1))


def small_cnn():
    """conv + batch-norm + relu6 + padded max-pool + residual add + global pool + linear: the operator
    mix of the zoo's models at a size that compiles in seconds."""
    import torch
    from torch import nn

    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            x = self.pool(torch.clamp(self.bn1(self.conv1(x)), 0, 6))
            x = x + torch.relu(self.conv2(x))
            return self.fc(x.mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = Small().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        model.bn1.running_mean.uniform_(-0.5, 0.5)
        model.bn1.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture(scope="session")
def small_model():
    return small_cnn()


@pytest.fixture(scope="session")
def small_onnx(tmp_path_factory, small_model) -> Path:
    import torch

    path = tmp_path_factory.mktemp("onnx") / "small.onnx"
    torch.onnx.export(small_model, (torch.zeros(1, 3, 16, 16),), str(path), dynamo=True, external_data=False,
                      opset_version=18, input_names=["input"], output_names=["logits"])
    return path


@pytest.fixture(scope="session")
def small_inputs(tmp_path_factory) -> Path:
    """Four seeded 16x16 images as the infer stage's input file."""
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    path = tmp_path_factory.mktemp("inputs") / "inputs.npz"
    np.savez(path, x=x, ids=np.array([f"img{i}" for i in range(4)]), labels=np.array([1, 2, -1, 3]))
    return path


@pytest.fixture(scope="session")
def labelled_photos(tmp_path_factory) -> tuple[Path, Path]:
    """Three real photos from Python packages with their hand-checked ImageNet classes."""
    from deltamut.data import default_ground_truth, gather_default_images

    folder = tmp_path_factory.mktemp("photos")
    gathered = {p.name: p for p in gather_default_images(tmp_path_factory.mktemp("all"))}
    keep = ["skimage_coffee.png", "skimage_chelsea.png", "matplotlib_grace_hopper.jpg"]
    for name in keep:
        (folder / name).write_bytes(gathered[name].read_bytes())
    return folder, default_ground_truth()


@pytest.fixture
def device_pair(tmp_path):
    """A device pair's probe (deltamut.localise.stage.device_stage) on a model: `run(onnx, optimisation,
    baseline_target, device_target, device=None)` builds it under that optimisation for the baseline (this
    host) and for the device (where `device`, a backend spec without its library, says it runs; None: this
    host), on two random 16-px images whose per-image rows say the logits moved; returns the profile and the
    kernel table."""
    import json

    import numpy as np
    import pandas as pd

    from deltamut.compiler.build import build_library
    from deltamut.compiler.importer import import_onnx
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.passes import lower, optimise_graph
    from deltamut.defaults import section_default
    from deltamut.localise.stage import device_stage

    def run(onnx, optimisation: str, baseline_target: dict, device_target: dict, device: dict | None = None):
        opt = OptConfig.from_dict(optimisation, section_default("optimisations")[optimisation])
        lowered = lower(optimise_graph(import_onnx(onnx), opt), opt)
        build_library(lowered, baseline_target, opt, tmp_path / "baseline.so")
        build_library(lowered, device_target, opt, tmp_path / "device.so")
        ids = ["p", "q"]
        x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
        np.savez(tmp_path / "inputs.npz", x=x, ids=np.array(ids))
        pd.DataFrame({"a": "B", "b": "A", "image": ids, "status_a": "ok", "status_b": "ok", "top1_agree": True,
                      "top1_b": 0, "max_abs_err": 1e-7}).to_parquet(tmp_path / "per_image.parquet")
        (tmp_path / "deploy.json").write_text(json.dumps({"status": "ok"}))
        inputs = {"mutant_lib": "device.so", "original_lib": "baseline.so", "mutant_info": "deploy.json",
                  "inputs": "inputs.npz", "per_image": "per_image.parquet"}
        outputs = {k: str(tmp_path / v) for k, v in (("profile", "profile.json"), ("kernels", "kernels.parquet"),
                                                      ("plot", "growth.png"))}
        record = device_stage(inputs={**{k: str(tmp_path / v) for k, v in inputs.items()}, "onnx": str(onnx)},
                              outputs=outputs, pair={"a": "B", "b": "A"},
                              settings={"images": 8, "tolerance": 1e-9, "timeout_s": 300}, log=tmp_path / "log",
                              device=device)
        return record, pd.read_parquet(outputs["kernels"])

    return run
