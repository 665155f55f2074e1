"""Export: torch -> one checked ONNX file whose ONNX Runtime outputs match PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from deltamut.export import check_onnx, export_model
from deltamut.models import ModelInfo, load_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export shared by the tests: the dynamo exporter takes seconds per model."""
    info = load_model("tiny", {"arch": "resnet18", "input_size": 32, "seed": 1})
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    return info, path, export_model(info, path, opset=18)


def test_export_round_trips_through_onnxruntime(exported):
    info, path, record = exported
    model = check_onnx(path)
    assert record == {"exporter": "dynamo", "opset": 18, "batch": 1}
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 18
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)  # one file
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = info.module(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(path)).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_export_keeps_every_batch_norm_and_folds_the_rest(exported):
    """Batch norm stays a layer of its own (the compiler configuration decides whether to fold it, and
    MutateNN's batch-norm mutants need it), while the rest of the exporter's clean-up still runs: no
    Constant, Identity, Shape or Pad node survives into the file."""
    from torch import nn

    info, path, _ = exported
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    layers = list(info.module.modules())
    assert ops.count("BatchNormalization") == sum(isinstance(m, nn.BatchNorm2d) for m in layers) > 0
    assert ops.count("Conv") == sum(isinstance(m, nn.Conv2d) for m in layers)
    assert not {"Constant", "Identity", "Shape", "Pad"} & set(ops), sorted(set(ops))


def test_a_static_onnx_source_is_prepared_without_changing_its_graph(exported, tmp_path):
    """A file already at the study's shape and without shape subgraphs keeps its nodes; the prepared file
    records what was checked."""
    from deltamut.export.onnx_prepare import prepared_record

    info, path, _ = exported
    onnx_info = ModelInfo(name="m", arch="onnx", module=None, onnx_path=path,
                          input_shape=(1, 3, 32, 32), preprocessing=info.preprocessing, num_classes=1000,
                          label_set="imagenet1k", pretrained=True, weights=None, seed=None)
    images = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    record = export_model(onnx_info, tmp_path / "b.onnx", images=images)
    assert record["exporter"] == "prepare" and record["folded"]
    given, prepared = (onnx.load(str(f)).graph.node for f in (path, tmp_path / "b.onnx"))
    assert [n.op_type for n in prepared] == [n.op_type for n in given]
    assert prepared_record(tmp_path / "b.onnx")["fold_check"]["images"] == 2


def test_corrupt_onnx_names_the_file(exported, tmp_path):
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(exported[1].read_bytes()[:1000])
    with pytest.raises(ValueError, match="truncated.onnx"):
        check_onnx(bad)
    with pytest.raises(ValueError, match="missing.onnx: ONNX file not found"):
        check_onnx(tmp_path / "missing.onnx")


def test_a_conversion_its_exporter_cannot_make_is_a_recorded_finding(tmp_path, small_inputs):
    """The legacy exporter cannot export scaled-dot-product attention below opset 14: for a conversion that is
    a result (a failure record at export, which ONNX Runtime's reference reports as an export failure), while
    the same failure of the primary export stops the job."""
    from deltamut.export.stage import export_stage
    from deltamut.failure import read_failure
    from deltamut.runner.stage import reference_stage

    out = tmp_path / "model.onnx"
    spec, legacy = {"arch": "vit_ti_16", "input_size": 16}, {"exporter": "legacy", "opset": 13, "batch": 1}
    assert export_stage(inputs={}, outputs={"onnx": out}, name="vit", model=spec, export=legacy,
                        conversion=True) is False
    record = read_failure(out)
    assert record["stage"] == "export" and "scaled_dot_product_attention" in record["error"]
    result = reference_stage(inputs={"onnx": out, "inputs": small_inputs}, outputs={"outputs": tmp_path / "ort.npz"},
                             framework="onnxruntime", model="vit@legacy-opset13", model_spec={}, runner={},
                             log=tmp_path / "ort.log")
    assert set(result.status) == {"error"} and result.meta["failed_stage"] == "export"
    with pytest.raises(Exception, match="scaled_dot_product_attention"):
        export_stage(inputs={}, outputs={"onnx": tmp_path / "primary.onnx"}, name="vit", model=spec, export=legacy,
                     conversion=False)
