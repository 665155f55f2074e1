"""ONNX files as users bring them: a dynamic input, placeholder dims, a shape-computing subgraph. Each is
prepared (input fixed, shape subgraphs folded), and then ONNX Runtime, TVM and PyTorch agree on it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from deltamut.compiler.importer import import_onnx
from deltamut.export.onnx_prepare import prepare_onnx, prepared_record, run_onnxruntime
from deltamut.models import load_model
from deltamut.models.errors import ModelError
from tests import user_models

H = W = 24


@pytest.fixture(scope="module")
def classifier() -> nn.Module:
    return user_models.classifier()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 3, H, W)).astype(np.float32)


@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory, classifier):
    return user_models.export_dynamic(classifier, tmp_path_factory.mktemp("dyn") / "dynamic.onnx", (H, W))


def _dims(path) -> list:
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


def _torch(classifier, images) -> np.ndarray:
    with torch.no_grad():
        return classifier(torch.from_numpy(images)).numpy()


def _tvm(path, images) -> np.ndarray:
    """TVM's outputs of the prepared file, built unoptimised for the host CPU, one image at a time."""
    import tvm
    from tvm import relax

    mod = relax.transform.LegalizeOps()(import_onnx(path))
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    return np.concatenate([vm["main"](tvm.runtime.tensor(x[None])).numpy() for x in images])


def test_a_dynamic_input_is_fixed_and_every_runtime_agrees_with_pytorch(dynamic_onnx, classifier, images, tmp_path):
    assert _dims(dynamic_onnx) == ["n", 3, "h", "w"]
    with pytest.raises(ValueError, match="has no static shape"):
        import_onnx(dynamic_onnx)
    info = load_model("mine", {"source": "onnx", "path": str(dynamic_onnx), "input_shape": [H, W]})
    assert info.input_shape == (1, 3, H, W)
    out = tmp_path / "model.onnx"
    record = prepare_onnx(dynamic_onnx, out, info.input_shape, images)
    assert _dims(out) == [1, 3, H, W]
    assert record["folded"] and record["nodes"] < record["nodes_given"]  # the flatten's shape chain is gone
    expected = _torch(classifier, images)
    np.testing.assert_allclose(run_onnxruntime(onnx.load(str(out)), images, 1), expected, atol=1e-5)
    np.testing.assert_allclose(_tvm(out, images), expected, atol=1e-5)


def test_placeholder_dims_are_dynamic_not_a_shape(dynamic_onnx, tmp_path):
    """`[-1, 3, 0, 0]`, as some exporters write a dynamic input: the size given in the study is used."""
    model = onnx.load(str(dynamic_onnx))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (-1, 3, 0, 0), strict=True):
        dim.Clear()
        dim.dim_value = value
    path = tmp_path / "placeholders.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match=r"input shape \['\?', 3, '\?', '\?'\]; give input_shape"):
        load_model("mine", {"source": "onnx", "path": str(path)})
    assert load_model("mine", {"source": "onnx", "path": str(path), "input_shape": H}).input_shape == (1, 3, H, W)


def test_a_shape_subgraph_is_folded_so_that_tvm_imports_it(classifier, images, tmp_path):
    given = tmp_path / "shape_subgraph.onnx"
    onnx.save(user_models.shape_subgraph_model(classifier), str(given))
    # before: the file as given, at a static shape, names the node TVM cannot import
    static = tmp_path / "static.onnx"
    model = onnx.load(str(given))
    for dim, value in zip(model.graph.input[0].type.tensor_type.shape.dim, (1, 3, H, W), strict=True):
        dim.Clear()
        dim.dim_value = value
    onnx.save(model, str(static))
    with pytest.raises(ValueError, match=r"TVM cannot import node 'flatten' \(Reshape\)"):
        import_onnx(static)
    out = tmp_path / "model.onnx"
    record = prepare_onnx(given, out, (1, 3, H, W), images)
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert not {"Shape", "Cast", "Slice", "Concat"} & set(ops), ops
    assert record == prepared_record(out) and record["fold_check"]["max_abs_diff"] == 0.0
    expected = _torch(classifier, images)
    np.testing.assert_allclose(_tvm(out, images), expected, atol=1e-5)


def test_a_static_dim_that_contradicts_the_study_names_the_file(dynamic_onnx, images, tmp_path):
    model = onnx.load(str(dynamic_onnx))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "batch1.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match=r"batch1.onnx: input 'x' has static dim 0 = 1, not 8"):
        prepare_onnx(path, tmp_path / "out.onnx", (8, 3, H, W), images)


def test_a_graph_that_cannot_hold_at_the_study_input_is_refused_naming_file_and_op(images, tmp_path):
    """A reshape that cannot hold at the study's input (1 x 3 x 24 x 24 is 1728 values, not a multiple of 7):
    shape inference at the fixed shape finds it before any runtime runs."""
    target = numpy_helper.from_array(np.asarray([7, -1], np.int64), "target")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "target"], ["y"])], "bad",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [target])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    with pytest.raises(ValueError, match=r"bad.onnx: cannot fix its input at \[1, 3, 24, 24\]: InferenceError: "
                                         r".*op_type:Reshape.*incompatible shapes"):
        prepare_onnx(path, tmp_path / "out.onnx", (1, 3, H, W), images)


def test_a_legacy_dynamic_efficientnet_imports_into_tvm_once_prepared(tmp_path):
    """EfficientNet's 'SAME' padding, exported by the legacy exporter with dynamic dims, computes every pad
    from the input shape (Constant -> ConstantOfShape -> Concat -> Slice -> Transpose -> Reshape -> Pad).
    TVM rejects the file as given at its first Pad; prepared, its pads are constants and it imports."""
    info = load_model("efficientnet_lite0", {"source": "zoo", "input_size": 32})
    path = user_models.export_dynamic(info.module, tmp_path / "lite0.onnx", (32, 32))
    with pytest.raises(ValueError, match=r"TVM cannot import node '/_conv_stem/static_padding/Pad' \(Pad\): "
                                         r"ValueError: Dynamic pads are not supported yet"):
        import_onnx(path, (1, 3, 32, 32))
    images = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    record = prepare_onnx(path, tmp_path / "prepared.onnx", (1, 3, 32, 32), images)
    assert record["folded"] and record["fold_check"]["max_abs_diff"] <= record["fold_check"]["limit"]
    assert "main" in [gv.name_hint for gv in import_onnx(tmp_path / "prepared.onnx").get_global_vars()]


def test_a_batch_larger_than_the_images_is_filled_up_and_trimmed(dynamic_onnx, classifier, images):
    """Three images at batch 8 (a throughput build of a small dataset): every image's output, once."""
    out = run_onnxruntime(onnx.load(str(dynamic_onnx)), images, 8)
    np.testing.assert_allclose(out, _torch(classifier, images), atol=1e-5)
