"""The model zoo: real pretrained weights on real photos, torchvision-compatible architectures, clear errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import skimage.data
import torch
from onnx import TensorProto, helper
from PIL import Image

from deltamut.models import ModelError, ModelInfo, class_names, load_model, zoo_names
from deltamut.models.zoo import ARCHS

# Parameter counts that torchvision publishes for its ImageNet models (num_params in its weight metadata).
# Equal counts, on top of equal key names, say the architecture is the same one.
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "mobilenet_v2": 3_504_872,
    "densenet121": 7_978_856,
    "alexnet": 61_100_840,
    "squeezenet1_0": 1_248_424,
    "squeezenet1_1": 1_235_496,
    "shufflenet_v2": 2_278_604,
    "inception_v3": 27_161_264,
    "vit_b_16": 86_567_656,
}

# A few entries of torchvision's state dicts, with their shapes.
TORCHVISION_KEYS = {
    "resnet18": {"conv1.weight": (64, 3, 7, 7), "layer1.0.conv1.weight": (64, 64, 3, 3),
                 "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer4.1.bn2.running_var": (512,),
                 "fc.weight": (1000, 512)},
    "resnet50": {"layer1.0.conv3.weight": (256, 64, 1, 1), "layer1.0.downsample.1.weight": (256,),
                 "layer3.5.conv2.weight": (256, 256, 3, 3), "fc.weight": (1000, 2048)},
    "mobilenet_v2": {"features.0.0.weight": (32, 3, 3, 3), "features.1.conv.0.0.weight": (32, 1, 3, 3),
                     "features.1.conv.1.weight": (16, 32, 1, 1), "features.2.conv.0.0.weight": (96, 16, 1, 1),
                     "features.2.conv.3.running_mean": (24,), "features.18.0.weight": (1280, 320, 1, 1),
                     "classifier.1.weight": (1000, 1280)},
    "densenet121": {"features.conv0.weight": (64, 3, 7, 7),
                    "features.denseblock1.denselayer1.norm1.weight": (64,),
                    "features.denseblock4.denselayer16.conv2.weight": (32, 128, 3, 3),
                    "features.transition3.conv.weight": (512, 1024, 1, 1), "features.norm5.bias": (1024,),
                    "classifier.weight": (1000, 1024)},
    "inception_v3": {"Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3), "Conv2d_1a_3x3.bn.running_var": (32,),
                     "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
                     "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
                     "AuxLogits.conv1.conv.weight": (768, 128, 5, 5), "AuxLogits.fc.weight": (1000, 768),
                     "fc.weight": (1000, 2048)},
    "alexnet": {"features.0.weight": (64, 3, 11, 11), "features.10.weight": (256, 256, 3, 3),
                "classifier.1.weight": (4096, 9216), "classifier.4.weight": (4096, 4096),
                "classifier.6.weight": (1000, 4096)},
    "shufflenet_v2": {"conv1.0.weight": (24, 3, 3, 3), "stage2.0.branch1.0.weight": (24, 1, 3, 3),
                      "stage2.0.branch1.2.weight": (58, 24, 1, 1), "stage2.1.branch2.0.weight": (58, 58, 1, 1),
                      "stage4.3.branch2.5.weight": (232, 232, 1, 1), "conv5.0.weight": (1024, 464, 1, 1),
                      "fc.weight": (1000, 1024)},
    "squeezenet1_1": {"features.0.weight": (64, 3, 3, 3), "features.3.squeeze.weight": (16, 64, 1, 1),
                      "features.12.expand3x3.weight": (256, 64, 3, 3), "classifier.1.weight": (1000, 512, 1, 1)},
    "vit_b_16": {"conv_proj.weight": (768, 3, 16, 16), "class_token": (1, 1, 768),
                 "encoder.pos_embedding": (1, 197, 768),
                 "encoder.layers.encoder_layer_0.self_attention.in_proj_weight": (2304, 768),
                 "encoder.layers.encoder_layer_11.mlp.3.weight": (768, 3072), "encoder.ln.weight": (768,),
                 "heads.head.weight": (1000, 768)},
}


def _structure(arch: str) -> torch.nn.Module:
    """The architecture on the meta device: shapes and names without the cost of initialising weights."""
    with torch.device("meta"):
        return ARCHS[arch].build(ARCHS[arch].preprocessing.height, {}).eval()


def _tflite_input(image: np.ndarray) -> torch.Tensor:
    """The TF-Lite EfficientNet convention, written out here independently of the package under test."""
    im = Image.fromarray(image)
    scale = 256 / min(im.size)
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BILINEAR)
    left, top = (im.width - 224) // 2, (im.height - 224) // 2
    pixels = np.asarray(im.crop((left, top, left + 224, top + 224)), dtype=np.float32)
    return torch.from_numpy(((pixels - 127.0) / 128.0).transpose(2, 0, 1)[None].copy())


@pytest.fixture(scope="module")
def resnet18_seed7() -> ModelInfo:
    return load_model("resnet18", {"input_size": 64, "seed": 7})


def _logits(info: ModelInfo, x: torch.Tensor | None = None, seed: int = 123) -> torch.Tensor:
    if x is None:
        x = torch.randn(*info.input_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return info.module(x)


def test_efficientnet_lite0_pretrained_names_real_photos():
    info = load_model("efficientnet_lite0", {"source": "zoo"})
    assert info.pretrained and info.seed is None and "efficientnet-lite0" in info.weights
    assert info.input_shape == (1, 3, 224, 224)
    assert (info.preprocessing.resize, info.preprocessing.mean, info.preprocessing.std) == (
        256, (127.0,) * 3, (128.0,) * 3)
    names = class_names()
    coffee = _logits(info, _tflite_input(skimage.data.coffee())).softmax(1)[0]
    assert int(coffee.argmax()) == 967 and names[967] == "espresso"
    assert float(coffee[967]) > 0.8
    cat = int(_logits(info, _tflite_input(skimage.data.chelsea())).argmax())
    assert 281 <= cat <= 285, names[cat]


@pytest.mark.parametrize("arch", sorted(TORCHVISION_PARAMS))
def test_parameter_count_and_keys_match_torchvision(arch):
    module = _structure(arch)
    assert sum(p.numel() for p in module.parameters()) == TORCHVISION_PARAMS[arch]
    state = module.state_dict()
    for key, shape in TORCHVISION_KEYS.get(arch, {}).items():
        assert tuple(state[key].shape) == shape, key


def test_resnet18_state_dict_layout():
    """62 parameter tensors (20 convs, 20 batch norms, fc) plus 3 buffers per batch norm, as in torchvision."""
    state = _structure("resnet18").state_dict()
    assert len(state) == 122
    assert sum(k.endswith("num_batches_tracked") for k in state) == 20


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_random_weights_are_seeded_and_leave_global_rng_alone(arch):
    rng_before = torch.random.get_rng_state()
    a = load_model(arch, {"input_size": 64, "seed": 0})
    b = load_model(arch, {"input_size": 64, "seed": 0})
    c = load_model(arch, {"input_size": 64, "seed": 1})
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert not a.pretrained and a.weights is None and a.seed == 0
    ya, yb, yc = _logits(a), _logits(b), _logits(c)
    assert ya.shape == (1, 1000) and torch.isfinite(ya).all()
    assert torch.equal(ya, yb)
    assert not torch.allclose(ya, yc)
    # Batch-norm calibration keeps random logits at a scale where comparisons mean something.
    assert 1e-3 < float(ya.std()) < 1e3


def test_default_seed_is_zero_and_arch_defaults_to_name():
    info = load_model("squeezenet1_1", {"input_size": 64})
    assert (info.arch, info.seed) == ("squeezenet1_1", 0)
    assert torch.equal(_logits(info), _logits(load_model("x", {"arch": "squeezenet1_1", "input_size": 64,
                                                                "seed": 0})))


# (arch, its native resize/crop): the smallest input must run and scale the preprocessing with it.
# ResNet-101/152 and Lite1/2 share the code of ResNet-50 and Lite0.
SMALL_INPUT_ARCHS = [("alexnet", 256 / 224), ("densenet121", 256 / 224), ("inception_v3", 342 / 299),
                     ("squeezenet1_0", 256 / 224), ("squeezenet1_1", 256 / 224), ("mobilenet_v2", 256 / 224),
                     ("resnet18", 256 / 224), ("resnet50", 256 / 224), ("shufflenet_v2", 256 / 224),
                     ("efficientnet_lite0", 256 / 224), ("vit_ti_16", 256 / 224)]


@pytest.mark.parametrize(("arch", "ratio"), SMALL_INPUT_ARCHS)
def test_every_arch_runs_at_its_smallest_input_and_not_below(arch, ratio):
    smallest = ARCHS[arch].min_input
    info = load_model(arch, {"input_size": smallest})
    assert info.input_shape == (1, 3, smallest, smallest)
    assert (info.preprocessing.crop, info.preprocessing.resize) == ((smallest, smallest), round(smallest * ratio))
    assert _logits(info).shape == (1, 1000)
    if smallest > 1:
        with pytest.raises(ModelError, match="input_size"):
            load_model(arch, {"input_size": smallest - 1})
        with pytest.raises(RuntimeError), torch.no_grad():  # the bound is tight: one pixel less breaks the net
            _structure(arch)(torch.zeros(1, 3, smallest - 1, smallest - 1, device="meta"))


def test_all_zoo_archs_are_covered_here():
    # vit_ti_16 is vit_b_16's code at DeiT-Tiny's shape: torchvision publishes no such model
    assert set(zoo_names()) == set(TORCHVISION_PARAMS) | {f"efficientnet_lite{k}" for k in range(3)} | {"vit_ti_16"}


def test_small_archs_accept_64_pixel_inputs():
    """Tiny test studies feed 64 x 64 images (real runs at 64: the seeded and the export tests)."""
    small = ["mobilenet_v2", "resnet18", "squeezenet1_0", "squeezenet1_1", "shufflenet_v2", "efficientnet_lite0"]
    assert all(ARCHS[arch].min_input <= 64 for arch in small)


@pytest.mark.parametrize("wrap", [lambda s: s, lambda s: {"state_dict": s, "epoch": 3}, lambda s: {"model": s},
                                  lambda s: {f"module.{k}": v for k, v in s.items()}],
                         ids=["raw", "state_dict", "model", "data_parallel"])
def test_saved_weights_round_trip(tmp_path, wrap, resnet18_seed7):
    source = resnet18_seed7
    path = tmp_path / "resnet18.pth"
    torch.save(wrap(source.module.state_dict()), path)
    loaded = load_model("resnet18", {"input_size": 64, "weights": str(path), "seed": 0})
    assert loaded.pretrained and loaded.weights == str(path) and loaded.seed is None
    assert torch.equal(_logits(loaded), _logits(source))


def test_densenet_loads_torchvision_legacy_key_names(tmp_path):
    """Torchvision's published DenseNet files spell `norm1` as `norm.1`; they must load all the same."""
    source = load_model("densenet121", {"input_size": 32, "seed": 5})
    # As in those files: old names, and no num_batches_tracked (older than torch 0.4.1).
    legacy = {k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v
              for k, v in source.module.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert any(".norm.1." in k for k in legacy)
    path = tmp_path / "densenet121.pth"
    torch.save(legacy, path)
    loaded = load_model("densenet121", {"input_size": 32, "weights": str(path)})
    assert torch.equal(_logits(loaded), _logits(source))


def test_unknown_arch_names_it_and_the_known_ones():
    with pytest.raises(ValueError, match="resnet9000") as err:
        load_model("resnet9000", {"source": "zoo"})
    assert "resnet18" in str(err.value) and "efficientnet_lite0" in str(err.value)


def test_missing_and_corrupt_weights_files_are_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ValueError, match="does not exist") as err:
        load_model("resnet18", {"weights": str(missing)})
    assert str(missing) in str(err.value)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02 definitely not a checkpoint" * 10)
    with pytest.raises(ValueError, match="cannot be read") as err:
        load_model("resnet18", {"weights": str(corrupt)})
    assert str(corrupt) in str(err.value)


def test_weights_of_another_architecture_are_refused(tmp_path, resnet18_seed7):
    path = tmp_path / "r18.pth"
    torch.save(resnet18_seed7.module.state_dict(), path)
    with pytest.raises(ValueError, match="resnet50") as err:
        load_model("resnet50", {"weights": str(path), "input_size": 64})
    message = str(err.value)
    assert str(path) in message and "missing keys" in message and "layer1.0.conv3.weight" in message
    assert "shape mismatches (file vs resnet50)" in message
    assert "layer1.0.conv1.weight (64, 64, 3, 3) vs (64, 64, 1, 1)" in message


def test_typo_in_entry_is_refused_rather_than_giving_random_weights():
    with pytest.raises(ValueError, match="weight"):
        load_model("resnet18", {"source": "zoo", "weight": "/tmp/resnet18.pth"})


def _classifier_onnx(path, dims, classes=10):
    """A real, tiny ONNX classifier: global average pool, flatten, a dense layer."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, classes], np.ones(3 * classes, np.float32).tolist())
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, path)
    return path


def test_onnx_source_reads_shape_and_classes_from_the_graph(tmp_path):
    path = _classifier_onnx(tmp_path / "tiny.onnx", [1, 3, 48, 48])
    info = load_model("mine", {"source": "onnx", "path": str(path), "preprocessing": "tflite"})
    assert (info.arch, info.module, info.onnx_path) == ("onnx", None, path)
    assert info.input_shape == (1, 3, 48, 48) and info.num_classes == 10
    assert info.preprocessing.crop == (48, 48) and info.preprocessing.mean == (127.0,) * 3
    custom = {"resize": 60, "crop": 48, "mean": [0, 0, 0], "std": [255, 255, 255]}
    info = load_model("mine", {"source": "onnx", "path": str(path), "input_size": 48, "preprocessing": custom})
    assert info.preprocessing.std == (255.0,) * 3 and info.preprocessing.resize == 60
    with pytest.raises(ValueError, match="contradicts"):
        load_model("mine", {"source": "onnx", "path": str(path), "input_size": 64})


def test_onnx_source_with_symbolic_size_needs_input_shape(tmp_path):
    path = _classifier_onnx(tmp_path / "dyn.onnx", ["N", 3, "H", "W"])
    with pytest.raises(ValueError, match="give input_shape"):
        load_model("mine", {"source": "onnx", "path": str(path)})
    for spec in ({"input_size": 64}, {"input_shape": 64}, {"input_shape": [64, 64]}):
        info = load_model("mine", {"source": "onnx", "path": str(path), **spec})
        assert info.input_shape == (1, 3, 64, 64) and info.preprocessing.crop == (64, 64), spec
    info = load_model("mine", {"source": "onnx", "path": str(path), "input_shape": [48, 192]})
    assert info.input_shape == (1, 3, 48, 192) and info.preprocessing.crop == (48, 192)
    info = load_model("mine", {"source": "onnx", "path": str(path), "preprocessing": "paddle-cls"})
    assert info.input_shape == (1, 3, 48, 192), "a named preset's size serves a dynamic input"
    with pytest.raises(ValueError, match="give input_shape or input_size, not both"):
        load_model("mine", {"source": "onnx", "path": str(path), "input_shape": 64, "input_size": 64})


def test_onnx_source_in_nhwc_is_fed_nhwc_and_a_channel_mismatch_is_named(tmp_path):
    path = _channels_last_onnx(tmp_path / "nhwc.onnx", [1, 40, 56, 3])
    info = load_model("mine", {"source": "onnx", "path": str(path)})
    assert info.preprocessing.layout == "NHWC" and info.input_shape == (1, 40, 56, 3)
    grey = _classifier_onnx(tmp_path / "grey.onnx", [1, 1, 32, 32])
    with pytest.raises(ValueError, match="takes 1 channel.*set preprocessing channels: L"):
        load_model("mine", {"source": "onnx", "path": str(grey)})
    info = load_model("mine", {"source": "onnx", "path": str(grey),
                               "preprocessing": {"channels": "L", "mean": [127.5], "std": [127.5]}})
    assert info.input_shape == (1, 1, 32, 32)


def _channels_last_onnx(path, dims, classes=10):
    """A tiny classifier that takes NHWC input, as tf2onnx writes Keras models: reduce over H and W, dense."""
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3, classes], np.ones(3 * classes, np.float32).tolist())
    axes = helper.make_tensor("axes", TensorProto.INT64, [2], [1, 2])
    nodes = [helper.make_node("ReduceMean", ["image", "axes"], ["pooled"], keepdims=0),
             helper.make_node("MatMul", ["pooled", "w"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
                              [weight, axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


def test_class_names_come_from_the_labels_file_and_must_match_the_model(tmp_path):
    path = _classifier_onnx(tmp_path / "two.onnx", [1, 3, 16, 16], classes=2)
    info = load_model("mine", {"source": "onnx", "path": str(path)})
    assert (info.num_classes, info.class_names, info.label_set) == (2, ["0", "1"], "indices")
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    info = load_model("mine", {"source": "onnx", "path": str(path), "labels": str(names)})
    assert (info.num_classes, info.class_names, info.label_set) == (2, ["cat", "dog"], str(names))
    three = tmp_path / "three.json"
    three.write_text('{"0": "cat", "1": "dog", "2": "fox"}')
    with pytest.raises(ValueError, match=r"three.json names 3 classes but the model outputs 2"):
        load_model("mine", {"source": "onnx", "path": str(path), "labels": str(three)})


def test_missing_and_corrupt_onnx_files_are_named(tmp_path):
    missing = tmp_path / "gone.onnx"
    with pytest.raises(ValueError, match="does not exist") as err:
        load_model("mine", {"source": "onnx", "path": str(missing)})
    assert str(missing) in str(err.value)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(_classifier_onnx(tmp_path / "ok.onnx", [1, 3, 8, 8]).read_bytes()[:40] + b"\xff" * 64)
    with pytest.raises(ValueError, match="not a valid ONNX model") as err:
        load_model("mine", {"source": "onnx", "path": str(corrupt)})
    assert str(corrupt) in str(err.value)


def test_class_names():
    names = class_names("imagenet1k")
    assert len(names) == 1000 and len(set(names)) > 990
    assert names[967] == "espresso"
    with pytest.raises(ValueError, match="imagenet21k"):
        class_names("imagenet21k")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["efficientnet_lite0", "mobilenet_v2", "resnet18"])
def test_exports_to_onnx_with_the_dynamo_exporter(tmp_path, arch):
    import onnxruntime

    info = load_model(arch, {"input_size": 64})
    x = torch.randn(*info.input_shape, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "model.onnx"
    torch.onnx.export(info.module, (x,), str(path), dynamo=True, external_data=False, opset_version=18)
    onnx.checker.check_model(str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, _logits(info, x).numpy(), rtol=1e-4, atol=1e-4)
