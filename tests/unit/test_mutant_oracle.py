"""An independent oracle for the mutation engine: the same mutant built by hand in PyTorch.

For every catalog operator that can be written in PyTorch too (operator replacements, inserted unaries,
transposes, model-level weight and activation operators), the engine's TVM mutant of a small CNN (conv,
batch norm, ReLU6, max-pool, conv with bias, ReLU, residual add, global mean, linear) must compute what the
hand-written PyTorch mutant computes, on real photos, within float32 rounding. This is what proves that
the engine mutates what it says it mutates: a site counted but left alone, a rewrite of the wrong input or
a mutant folded away by the graph passes would all show here. The model goes through the pipeline's own
export (which keeps batch norm), import and `extended` optimisation, as the mutate stage runs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.nn import functional as F

import deltamut.mutations as dm
from deltamut.defaults import section_default

REPO = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((REPO / "config" / "mutations.yaml").read_text())
EXTENDED = section_default("optimisations")["extended"]


def forward(m, x, *, conv_in=None, conv_w=None, conv_out=None, bn_in=None, relu6=None, relu=None, add=None,
            fc_in=None, fc_out=None, skip_conv2=False, weights=None):
    """conftest.small_cnn's forward pass written out, with a hook at each kind of site (default: no change) and
    optionally other weights (conv1, conv2, fc)."""
    def ident(t):
        return t

    conv_in, conv_w, conv_out = conv_in or ident, conv_w or ident, conv_out or ident
    bn_in, fc_in, fc_out = bn_in or ident, fc_in or ident, fc_out or ident
    relu6 = relu6 or (lambda t: torch.clamp(t, 0, 6))
    relu, add = relu or torch.relu, add or torch.add
    w1, w2, wf = weights or (m.conv1.weight, m.conv2.weight, m.fc.weight)
    bias2 = m.conv2.bias[None, :, None, None]
    y = conv_out(F.conv2d(conv_in(x), conv_w(w1), padding=1))
    y = m.pool(relu6(m.bn1(bn_in(y))))
    z = y + bias2 if skip_conv2 else add(conv_out(F.conv2d(conv_in(y), conv_w(w2), padding=1)), bias2)
    y = add(y, relu(z))
    return add(fc_out(fc_in(y.mean(dim=(2, 3))) @ wf.T), m.fc.bias)


def _transposed(t):
    return t.transpose(-1, -2)


# catalog entry -> the same mutation written in PyTorch
HAND_WRITTEN = {
    "mnn01_transpose_conv2d_in0": {"conv_in": _transposed},
    "mnn04_transpose_conv2d_dense_in1": {"conv_w": _transposed},  # the linear's (8, 10) weight is not square
    "mnn05_transpose_batch_norm_in0": {"bn_in": _transposed},
    "mnn06_exp_before_conv2d_dense": {"conv_in": torch.exp, "fc_in": torch.exp},
    "mnn07_exp_after_conv2d_dense": {"conv_out": torch.exp, "fc_out": torch.exp},
    "mnn08_exp_before_batch_norm": {"bn_in": torch.exp},
    "mnn09_round_before_batch_norm": {"bn_in": torch.round},
    # every add of the graph as imported: conv2's bias, the residual, the linear's bias (conv1 has no bias)
    "mnn10_add_to_subtract": {"add": torch.sub},
    "mnn11_relu_to_sigmoid": {"relu6": torch.sigmoid, "relu": torch.sigmoid},
    "model_activation_inversion": {"relu6": lambda t: -torch.clamp(t, 0, 6), "relu": lambda t: -torch.relu(t)},
    "model_activation_removal": {"relu6": lambda t: t, "relu": lambda t: t},
    "model_layer_deactivation": {"skip_conv2": True},  # conv2 maps 8 channels to 8 at the same size
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, small_model):
    """The small CNN through the pipeline's export and import, and the `extended` lowering."""
    from deltamut.compiler.importer import import_onnx
    from deltamut.compiler.optconfig import OptConfig, graph_slice, lowering_slice
    from deltamut.compiler.passes import lower, optimise_graph
    from deltamut.data.preprocessing import TORCHVISION
    from deltamut.export import export_model
    from deltamut.models import ModelInfo

    path = tmp_path_factory.mktemp("oracle") / "small.onnx"
    info = ModelInfo(name="small", arch="small", module=small_model, onnx_path=None, input_shape=(1, 3, 16, 16),
                     preprocessing=TORCHVISION.scaled(16), num_classes=10, label_set="imagenet1k",
                     pretrained=False, weights=None, seed=0)
    export_model(info, path)
    opt = OptConfig.from_dict("extended", {**graph_slice(EXTENDED), **lowering_slice(EXTENDED)})
    return import_onnx(path), lambda g: lower(optimise_graph(g, opt), opt)


@pytest.fixture(scope="module")
def photos(labelled_photos):
    """Three real photos at the small CNN's 16 x 16, the pipeline's preprocessing."""
    from deltamut.data.inputs import preprocess
    from deltamut.data.preprocessing import TORCHVISION

    folder, _ = labelled_photos
    return np.stack([preprocess(p, TORCHVISION.scaled(16)) for p in sorted(folder.iterdir())])


def _run_tvm(module, x: np.ndarray) -> np.ndarray:
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.compile(module, tvm.target.Target({"kind": "llvm"})), tvm.cpu())
    return np.concatenate([vm["main"](tvm.runtime.tensor(x[i : i + 1])).numpy() for i in range(len(x))])


def _torch(model, x: np.ndarray, **hooks) -> np.ndarray:
    with torch.no_grad():
        return forward(model, torch.from_numpy(x), **hooks).numpy()


def _agree(got: np.ndarray, want: np.ndarray, original: np.ndarray) -> None:
    """Within float32 rounding of the mutant's own scale, and far from the original (the check has teeth)."""
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * scale)
    assert np.abs(want - original).max() > 100 * 1e-5 * scale, "the mutant must change the outputs"


def test_the_hand_written_forward_is_the_model(small_model, photos, pipeline):
    imported, lower_fn = pipeline
    with torch.no_grad():
        reference = small_model(torch.from_numpy(photos)).numpy()
    np.testing.assert_allclose(_torch(small_model, photos), reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_run_tvm(lower_fn(imported), photos), reference, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_tvm_mutant_equals_the_pytorch_mutant(name, small_model, photos, pipeline):
    imported, lower_fn = pipeline
    mutant = dm.mutate(imported, CATALOG[name], lower_fn)
    assert mutant.manifest["applied"] > 0, mutant.manifest
    _agree(_run_tvm(mutant.module, photos), _torch(small_model, photos, **HAND_WRITTEN[name]),
           _torch(small_model, photos))


def _neurons(site: dict) -> list[int]:
    """The output neurons a weight operator's manifest site names ("... neurons [1, 5] ...")."""
    return [int(c) for c in site["after"].split("neurons [")[1].split("]")[0].split(",")]


def test_neuron_effect_block_zeroes_the_neurons_it_reports(small_model, photos, pipeline):
    """The manifest names the zeroed output neurons of each layer; PyTorch zeroes the same ones."""
    imported, lower_fn = pipeline
    mutant = dm.mutate(imported, {"operator": "neuron_effect_block", "fraction": 0.5, "seed": 4}, lower_fn)
    zeroed = [_neurons(s) for s in mutant.manifest["sites"]]
    m = small_model
    weights = [m.conv1.weight.clone(), m.conv2.weight.clone(), m.fc.weight.clone()]  # the sites, in program order
    assert len(zeroed) == len(weights)
    for w, neurons in zip(weights, zeroed, strict=True):
        w[neurons] = 0
    _agree(_run_tvm(mutant.module, photos), _torch(m, photos, weights=weights), _torch(m, photos))


@pytest.mark.parametrize("spec", [{"operator": "gaussian_fuzz", "fraction": 1.0, "std_scale": 0.1, "seed": 3},
                                  {"operator": "weight_shuffle", "fraction": 0.5, "seed": 3}],
                         ids=["gaussian_fuzz", "weight_shuffle"])
def test_weight_mutants_compute_with_the_weights_they_hold(spec, small_model, photos, pipeline):
    """The mutant's weights are the model's changed as the operator says (noise of the declared size; the
    reported neurons' weights permuted, the others untouched), and TVM computes with exactly those: PyTorch
    with the same weights gives the same outputs."""
    from deltamut.mutations import _relax

    imported, lower_fn = pipeline
    op = dm.OPERATORS[spec["operator"]](spec)
    mutated, report = op.apply(imported)
    before = [w.array for w in _relax.layer_weights(imported)]
    after = [w.array for w in _relax.layer_weights(mutated)]
    assert len(after) == len(before) == 3 == report.candidates
    for k, (b, a) in enumerate(zip(before, after, strict=True)):
        if spec["operator"] == "gaussian_fuzz":
            assert np.std(a - b) == pytest.approx(0.1 * np.std(b), rel=0.3)
        else:
            chans = _neurons(report.sites[k])
            keep = [c for c in range(b.shape[0]) if c not in chans]
            np.testing.assert_array_equal(a[keep], b[keep])
            for c in chans:
                np.testing.assert_array_equal(np.sort(a[c], axis=None), np.sort(b[c], axis=None))
            assert not np.array_equal(a[chans], b[chans])
    want = _torch(small_model, photos, weights=[torch.from_numpy(w) for w in after])
    _agree(_run_tvm(lower_fn(mutated), photos), want, _torch(small_model, photos))
