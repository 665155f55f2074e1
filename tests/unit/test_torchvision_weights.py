"""The zoo loads torchvision's own checkpoints: every parameter and buffer name and shape, strictly.

`tests/data/torchvision_state_dicts.json.gz` lists, in state-dict order, each key and shape of torchvision
0.29.1's ImageNet models (commit in the file), read off torchvision's model definitions built on torch's meta
device with `weights=None` (torchvision itself does not import next to torch 2.13, so they were built from its
released source once). The zoo's code is written independently of it; these tests hold the two together.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from deltamut.models import ModelError, load_model
from deltamut.models.weights import load_strict
from deltamut.models.zoo import ARCHS

MANIFEST = json.loads(gzip.decompress((Path(__file__).parents[1] / "data" / "torchvision_state_dicts.json.gz")
                                      .read_bytes()))
ARCH_KEYS: dict[str, list[tuple[str, tuple[int, ...]]]] = {
    arch: [(k, tuple(shape)) for k, shape in keys] for arch, keys in MANIFEST["archs"].items()}
SMALL = ("resnet18", "squeezenet1_1", "shufflenet_v2", "mobilenet_v2")  # cheap enough to write and load for real


def _torchvision_state(arch: str, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A checkpoint shaped as torchvision writes it: its names, shapes and order, seeded values."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in ARCH_KEYS[arch]:
        if device == "meta":
            state[key] = torch.empty(shape, device="meta")
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.01
    return state


def test_the_manifest_covers_every_zoo_arch_torchvision_publishes():
    assert MANIFEST["torchvision"] == "0.29.1"
    assert set(ARCH_KEYS) == {a for a in ARCHS if not a.startswith("efficientnet_lite") and a != "vit_ti_16"}


@pytest.mark.parametrize("arch", sorted(ARCH_KEYS))
def test_torchvision_checkpoint_loads_strictly(arch):
    with torch.device("meta"):
        module = ARCHS[arch].build(ARCHS[arch].preprocessing.height, {"weights": "torchvision"}).eval()
    ours = [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
    assert ours == ARCH_KEYS[arch]  # names, shapes and order
    load_strict(module, _torchvision_state(arch, "meta"), Path(f"{arch}.pth"), arch)


@pytest.mark.parametrize("arch", SMALL)
def test_a_torchvision_pth_file_gives_the_model_its_values(tmp_path, arch):
    state = _torchvision_state(arch)
    path = tmp_path / f"{arch}.pth"
    torch.save(state, path)
    loaded = load_model(arch, {"weights": str(path), "input_size": 64}).module.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_a_wrong_or_missing_key_is_named_in_one_line(tmp_path):
    state = _torchvision_state("resnet18")
    state["fc.weights"] = state.pop("fc.weight")
    del state["layer2.0.bn1.running_mean"]
    path = tmp_path / "typo.pth"
    torch.save(state, path)
    with pytest.raises(ModelError) as err:
        load_model("resnet18", {"weights": str(path), "input_size": 64})
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "2 missing keys: layer2.0.bn1.running_mean, fc.weight" in message
    assert "1 unexpected keys: fc.weights (did you mean fc.weight?)" in message


def test_a_fine_tuned_checkpoint_brings_its_own_class_count_and_names(tmp_path):
    """The transfer-learning recipe: torchvision's resnet18 with `fc` replaced by a 3-class head."""
    state = _torchvision_state("resnet18")
    state["fc.weight"], state["fc.bias"] = torch.randn(3, 512) * 0.01, torch.zeros(3)
    path = tmp_path / "pets.pth"
    torch.save(state, path)
    names = tmp_path / "pets.txt"
    names.write_text("cat\ndog\nrabbit\n")
    info = load_model("pets", {"arch": "resnet18", "weights": str(path), "input_size": 64, "labels": str(names)})
    assert (info.num_classes, info.class_names) == (3, ["cat", "dog", "rabbit"])
    with torch.no_grad():
        assert info.module(torch.zeros(1, 3, 64, 64)).shape == (1, 3)
    assert torch.equal(info.module.state_dict()["fc.weight"], state["fc.weight"])
