"""The compile and deploy path on a real model: ONNX -> Relax -> lowered TIR -> library -> VM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deltamut.compiler.build import build_library
from deltamut.compiler.importer import import_onnx
from deltamut.compiler.optconfig import OptConfig, codegen_slice, graph_slice, lowering_slice
from deltamut.compiler.passes import lower, optimise_graph
from deltamut.compiler.serialize import load_module, save_module
from deltamut.compiler.targets import make_target

CONFIGS = {
    "basic": {"fuse": False, "fold_constants": False, "llvm": {"opt-level": 1}},
    "default": {"passes": ["DecomposeOpsForInference"]},
    "extended": {"passes": ["DecomposeOpsForInference", "CanonicalizeBindings", "EliminateCommonSubexpr",
                            "FoldConstant"], "llvm": {"opt-level": 3, "fast-math": True}, "schedule": "rules"},
}


def run_library(path, x):
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_original_matches_pytorch(name, small_model, small_onnx, tmp_path):
    opt = OptConfig.from_dict(name, CONFIGS[name])
    graph = optimise_graph(import_onnx(small_onnx), opt)
    save_module(graph, tmp_path / "graph.json")  # the files between stages must round-trip
    lowered = lower(load_module(tmp_path / "graph.json"), opt)
    info = build_library(lowered, {"kind": "llvm"}, opt, tmp_path / "lib.so")
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = small_model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_library(tmp_path / "lib.so", x), expected, atol=1e-4, rtol=1e-4)
    assert "llvm" in info["target"]
    # how each kernel was scheduled goes into deploy.json: with the CPU rules, every kernel by name
    kernels = {gv.name_hint for gv, f in lowered.functions_items() if type(f).__name__ == "PrimFunc"}
    schedule = info["schedule"]
    if opt.schedule == "rules":
        assert set(schedule["kernels"]) == kernels and schedule["fallbacks"] == {}, schedule
    else:
        assert schedule == {"rule": "none"}


def test_fusion_changes_the_lowered_module(small_onnx):
    import tvm_ffi

    graph = import_onnx(small_onnx)
    fused = lower(graph, OptConfig.from_dict("a", {}))
    unfused = lower(graph, OptConfig.from_dict("b", {"fuse": False}))
    assert not tvm_ffi.structural_equal(fused, unfused)
    assert any("fused_" in gv.name_hint for gv in fused.functions)
    assert not any("fused_" in gv.name_hint for gv in unfused.functions)


def test_llvm_attributes_reach_the_target():
    target = make_target({"kind": "llvm"}, {"opt-level": 0, "fast-math": True})
    assert target.attrs["opt-level"] == 0 and target.attrs["fast-math"]
    cross = make_target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]})
    assert cross.attrs["mtriple"] == "aarch64-linux-gnu" and "mcpu" not in cross.attrs


def test_unknown_pass_is_named():
    with pytest.raises(ValueError, match="FoldConstnat"):
        OptConfig.from_dict("typo", {"passes": ["FoldConstnat"]})


def test_corrupt_onnx_names_the_file(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x01garbage")
    with pytest.raises(ValueError, match="broken.onnx"):
        import_onnx(bad)


def test_corrupt_module_file_names_the_file(tmp_path):
    bad = tmp_path / "graph.json"
    bad.write_text('{"root": 1, "nodes": [')
    with pytest.raises(ValueError, match="graph.json"):
        load_module(bad)


def test_slices_split_the_config_by_stage():
    spec = {"passes": ["FoldConstant"], "fuse": False, "llvm": {"opt-level": 1}, "schedule": "rules",
            "disabled_pass": ["X"]}
    assert graph_slice(spec) == {"passes": ["FoldConstant"], "disabled_pass": ["X"]}
    assert lowering_slice(spec) == {"fuse": False, "disabled_pass": ["X"]}
    assert codegen_slice(spec) == {"llvm": {"opt-level": 1}, "schedule": "rules", "disabled_pass": ["X"]}
