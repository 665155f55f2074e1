"""Small real classifiers shaped like the ONNX files users bring (tests/unit/test_onnx_prepare.py and
tests/integration/test_user_onnx_study.py): a dynamic input, a reshape whose target is computed at run time,
a channels-last input, any number of classes."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn


class Classifier(nn.Module):
    """Conv, ReLU, global mean, a flatten written with the input's own batch dim (`x.shape[0]`: a Shape ->
    Gather -> Concat -> Reshape chain in a dynamic export), and a linear layer to `classes` classes."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, classes)

    def forward(self, x):
        y = torch.relu(self.conv(x)).mean((2, 3), keepdim=True)
        return self.fc(y.reshape(y.shape[0], -1))


class ChannelsLast(nn.Module):
    """A classifier that takes N x H x W x C, as Keras models exported by tf2onnx do."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.permute(0, 3, 1, 2))


def classifier(seed: int = 0, classes: int = 5) -> Classifier:
    torch.manual_seed(seed)
    return Classifier(classes).eval()


def export_dynamic(model: nn.Module, path: Path, size: tuple[int, int], channels_last: bool = False,
                   dynamo: bool = False) -> Path:
    """`model` exported with every dim but the channels dynamic (`[n, 3, h, w]`, or `[n, h, w, 3]` for a
    channels-last model), by the legacy TorchScript exporter or by the dynamo one (`torch.export`)."""
    shape, axes = ((1, *size, 3), {0: "n", 1: "h", 2: "w"}) if channels_last else ((1, 3, *size),
                                                                                  {0: "n", 2: "h", 3: "w"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {i: torch.export.Dim(name, min=2 if i == 0 else 8, max=1024) for i, name in axes.items()}
            example = torch.zeros(2, *shape[1:])  # a batch of 1 would be specialised to 1
            torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                              dynamic_shapes={"x": dims}, verbose=False)
        else:
            torch.onnx.export(model, (torch.zeros(*shape),), str(path), dynamo=False, opset_version=13,
                              input_names=["x"], output_names=["y"], dynamic_axes={"x": axes, "y": {0: "n"}})
    return path


def shape_subgraph_model(classifier) -> onnx.ModelProto:
    """The classifier's layers with its flatten's target computed as Paddle and older TF exports do: Shape ->
    Cast to float -> Mul -> Cast back -> Slice -> Concat -> Reshape. ONNX Runtime runs it; TVM 0.27 cannot
    reshape by such a computed tensor."""
    conv, fc = classifier.conv, classifier.fc
    weights = [numpy_helper.from_array(t.detach().numpy().astype(np.float32), name) for name, t in
               (("w", conv.weight), ("b", conv.bias), ("fw", fc.weight.T.contiguous()), ("fb", fc.bias))]
    const = {name: numpy_helper.from_array(np.asarray(v, dtype), name) for name, v, dtype in
             (("one", [1.0], np.float32), ("start", [0], np.int64), ("end", [1], np.int64),
              ("rest", [-1], np.int64))}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("ReduceMean", ["r"], ["m"], axes=[2, 3], keepdims=1),
             helper.make_node("Shape", ["m"], ["s"]),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["sf", "one"], ["sm"]),
             helper.make_node("Cast", ["sm"], ["si"], to=TensorProto.INT64),
             helper.make_node("Slice", ["si", "start", "end"], ["n"]),
             helper.make_node("Concat", ["n", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["m", "target"], ["flat"], name="flatten"),
             helper.make_node("MatMul", ["flat", "fw"], ["mm"]),
             helper.make_node("Add", ["mm", "fb"], ["y"])]
    graph = helper.make_graph(nodes, "shape_subgraph",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 5])],
                              weights + list(const.values()))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model
