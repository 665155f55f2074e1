"""The rule-based CPU schedule keeps results equal to the unscheduled build and never breaks a module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tvm
import tvm_ffi
from torch import nn
from tvm import relax, tirx
from tvm.relax.frontend.torch import from_exported_program
from tvm.script import relax as R

from deltamut.compiler.cpu_schedule import SCHEDULED_ATTR, cpu_target, schedule_cpu, schedule_cpu_with_report


class _TinyNet(nn.Module):
    """Covers the kernel kinds of the real models: padded 3x3, strided depthwise, 1x1 at widths that are and
    are not multiples of the vector width, pooling, global mean, residual add, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.conv = nn.Conv2d(16, 16, 3, padding=1)
        self.dw = nn.Conv2d(16, 16, 5, stride=2, padding=2, groups=16)
        self.pw = nn.Conv2d(16, 24, 1)
        self.pw2 = nn.Conv2d(24, 24, 1)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.shrink = nn.Conv2d(24, 24, 2)
        self.fc = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))  # 32x32
        x = torch.clamp(self.conv(x), 0.0, 6.0) + x
        x = torch.relu(self.dw(x))  # 16x16
        x = self.pw(x)
        x = self.pool(x)  # 8x8
        x = self.shrink(x)  # 7x7: no multiple of any vector width
        x = torch.relu(self.pw2(x)) + x
        return self.fc(x.mean(dim=(2, 3)))


def _lowered_tiny() -> tuple[tvm.IRModule, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    model = _TinyNet().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x).numpy()
        ep = torch.export.export(model, (x,))
    mod = from_exported_program(ep, keep_params_as_input=False, unwrap_unit_return_tuple=True)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    return relax.get_pipeline("zero")(mod), x.numpy(), ref


def _run(mod: tvm.IRModule, target, x: np.ndarray) -> np.ndarray:
    exe = tvm.compile(mod, target)
    vm = relax.VirtualMachine(exe, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


def _prim_funcs(mod: tvm.IRModule) -> dict[str, tirx.PrimFunc]:
    return {gv.name_hint: f for gv, f in mod.functions_items() if isinstance(f, tirx.PrimFunc)}


@pytest.fixture(scope="module")
def tiny():
    return _lowered_tiny()


def test_schedule_marks_every_kernel_and_keeps_outputs(tiny):
    lowered, x, ref = tiny
    target = cpu_target(num_cores=2)
    scheduled = schedule_cpu(lowered, target)
    funcs = _prim_funcs(scheduled)
    assert funcs, "the tiny model lowers to PrimFuncs"
    unscheduled = [n for n, f in funcs.items() if SCHEDULED_ATTR not in f.attrs]
    assert not unscheduled, f"left unscheduled: {unscheduled}"
    # the schedule really rewrote the loop nests: some loop runs in parallel and some is vectorised
    kinds = set()
    for f in funcs.values():
        tvm_ffi.structural_walk(f.body, [(tirx.For, lambda loop: kinds.add(int(loop.kind)))])
    assert {int(tirx.ForKind.PARALLEL), int(tirx.ForKind.VECTORIZED)} <= kinds
    base = _run(lowered, target, x)
    fast = _run(scheduled, target, x)
    np.testing.assert_allclose(fast, base, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fast, ref, rtol=1e-4, atol=1e-4)


def test_scheduling_twice_changes_nothing(tiny):
    target = cpu_target(num_cores=2)
    once = schedule_cpu(tiny[0], target)
    twice = schedule_cpu(once, target)
    for name, func in _prim_funcs(once).items():
        assert tvm_ffi.structural_equal(func, _prim_funcs(twice)[name])


def test_unschedulable_kernel_is_left_as_is():
    # softmax lowers to one PrimFunc with two reductions (max, then sum), which the rules do not cover
    @tvm.script.ir_module
    class Softmax:
        @R.function
        def main(x: R.Tensor((4, 37), "float32")) -> R.Tensor((4, 37), "float32"):
            with R.dataflow():
                y = R.nn.softmax(R.multiply(x, R.const(2.0, "float32")), axis=1)
                R.output(y)
            return y

    lowered = relax.get_pipeline("zero")(Softmax)
    target = cpu_target(num_cores=2)
    scheduled, report = schedule_cpu_with_report(lowered, target)
    before, after = _prim_funcs(lowered), _prim_funcs(scheduled)
    softmax = [n for n in before if "softmax" in n]
    assert softmax
    # the kernel left unscheduled is recorded as a fallback with the reason, the others as scheduled
    expected = {n: "fallback" if n in softmax else "rules" for n in before}
    assert {n: r.split(":")[0] for n, r in report.items()} == expected
    assert "more than one reduction block" in report[softmax[0]]
    for name in softmax:
        assert tvm_ffi.structural_equal(before[name], after[name])
        assert SCHEDULED_ATTR not in after[name].attrs
    x = np.random.default_rng(1).standard_normal((4, 37)).astype(np.float32)
    e = np.exp(2 * x - (2 * x).max(axis=1, keepdims=True))
    np.testing.assert_allclose(_run(scheduled, target, x), e / e.sum(axis=1, keepdims=True), rtol=1e-5)


def test_targets_host_and_aarch64():
    host = cpu_target(num_cores=3, fast_math=True)
    assert host.attrs["mcpu"] == tvm.target.codegen.llvm_get_system_cpu()
    assert int(host.attrs["num-cores"]) == 3
    arm = cpu_target(mtriple="aarch64-linux-gnu")
    assert "mcpu" not in arm.attrs
    assert "+neon" in list(arm.attrs["mattr"])


def test_schedule_builds_for_aarch64(tiny):
    target = cpu_target(mtriple="aarch64-linux-gnu", num_cores=4)
    scheduled = schedule_cpu(tiny[0], target)
    assert all(SCHEDULED_ATTR in f.attrs for f in _prim_funcs(scheduled).values())
    exe = tvm.compile(scheduled, target)  # LLVM's aarch64 backend must accept the vector code
    assert exe is not None


def test_channel_tile_choice():
    """Two channel vectors with a row tile of >= 4 where the row allows it; 1x1 convs on 7/14-wide rows take
    two vectors by 7; 3x3 convs there keep one vector by 7 (two spilled)."""
    from deltamut.compiler.cpu_schedule import _channel_tile, _Params

    avx2 = _Params(8, 12, 4)
    # loops: n, c, h, w, rc, ry, rx -> vi=3, ti=1, reduce_=[4, 5, 6]
    conv = lambda c, w, k: [1, c, w, w, 64, k, k]  # noqa: E731
    assert _channel_tile(conv(256, 56, 1), [4, 5, 6], 3, 1, avx2) == (16, 4)
    assert _channel_tile(conv(128, 28, 3), [4, 5, 6], 3, 1, avx2) == (16, 4)
    assert _channel_tile(conv(512, 7, 1), [4, 5, 6], 3, 1, avx2) == (16, 7)
    assert _channel_tile(conv(256, 14, 1), [4, 5, 6], 3, 1, avx2) == (16, 7)
    assert _channel_tile(conv(512, 7, 3), [4, 5, 6], 3, 1, avx2) == (8, 7)
    assert _channel_tile(conv(24, 28, 1), [4, 5, 6], 3, 1, avx2) == (8, 7)


def _constant_shapes(mod: tvm.IRModule) -> list[tuple[int, ...]]:
    shapes = []

    def visit(node):
        value = getattr(node, "value", None)
        if type(node).__name__ == "GenericConst" and hasattr(value, "numpy"):
            shapes.append(tuple(value.shape))

    tvm_ffi.structural_walk(mod["main"], visit)
    return shapes


def _buffer_ranks(func: tirx.PrimFunc, block_name: str) -> list[int]:
    """Ranks of the buffers that the blocks named ``block_name`` read."""
    ranks = []

    def visit(node):
        if isinstance(node, tvm.s_tir.SBlock) and node.name_hint == block_name:
            ranks.extend(len(r.source.shape) for r in node.reads)

    tvm_ffi.structural_walk(func.body, visit)
    return ranks


# Output channels of _TinyNet's convs in forward order: stem, conv, dw, pw, shrink, pw2.
_CONV_CHANNELS = (16, 16, 16, 24, 24, 24)


@pytest.mark.parametrize("mcpu, lanes", [("haswell", 8), ("skylake-avx512", 16)])
def test_conv_weights_are_packed_for_each_vector_width(tiny, mcpu, lanes):
    """Every conv whose output channels fill whole vectors gets its constant weights channel-packed at compile
    time, at the vector width of the CPU it is compiled for: AVX2 (8 float32 lanes) packs the 16- and
    24-channel convs, AVX-512 (16 lanes) the 16-channel ones only. Scheduling needs no such CPU; running
    the result does, so the test below runs the host's width only."""
    lowered, _, _ = tiny
    scheduled = schedule_cpu(lowered, tvm.target.Target({"kind": "llvm", "mcpu": mcpu, "num-cores": 2}))
    packed = sorted(s for s in _constant_shapes(scheduled) if len(s) == 5)
    expected = sorted(c for c in _CONV_CHANNELS if c % lanes == 0)
    assert all(s[-1] % lanes == 0 for s in packed), packed  # one or two vectors of channels per tile
    assert sorted(s[0] * s[-1] for s in packed) == expected, packed


def test_constant_weights_are_packed_once_at_compile_time(tiny):
    """Conv weights that the graph passes as constants reach the kernels already channel-packed, so no kernel
    re-packs them per call; where the weights are runtime inputs the kernel packs its own slice."""
    lowered, x, ref = tiny
    target = cpu_target(num_cores=2)
    scheduled = schedule_cpu(lowered, target)
    assert [s for s in _constant_shapes(scheduled) if len(s) == 5], _constant_shapes(scheduled)
    copies = [n for n, f in _prim_funcs(scheduled).items() if "_global" in f.script()]
    assert not copies, f"kernels still copying their weights: {copies}"
    np.testing.assert_allclose(_run(scheduled, target, x), ref, rtol=1e-4, atol=1e-4)

    # the same model with its weights as inputs of main: nothing to pre-pack, same results
    torch.manual_seed(0)
    model = _TinyNet().eval()
    ep = torch.export.export(model, (torch.from_numpy(x),))
    mod = from_exported_program(ep, keep_params_as_input=True, unwrap_unit_return_tuple=True)
    weights = [p.detach().numpy() for p in ep.parameters()]
    params_mod = relax.get_pipeline("zero")(relax.transform.DecomposeOpsForInference()(mod))
    by_input = schedule_cpu(params_mod, target)
    assert [n for n, f in _prim_funcs(by_input).items() if "_global" in f.script()]
    vm = relax.VirtualMachine(tvm.compile(by_input, target), tvm.cpu())
    args = [tvm.runtime.tensor(x)] + [tvm.runtime.tensor(w) for w in weights]
    np.testing.assert_allclose(vm["main"](*args).numpy(), ref, rtol=1e-4, atol=1e-4)


def test_depthwise_conv_reads_a_channel_packed_input(tiny):
    """The depthwise conv vectorises its channels: the padded input it reads is laid out channel-innermost."""
    lowered, _, _ = tiny
    scheduled = schedule_cpu(lowered, cpu_target(num_cores=2))
    ranks = [r for f in _prim_funcs(scheduled).values() for r in _buffer_ranks(f, "group_conv2d_nchw_update")]
    assert ranks and all(r == 5 for r in ranks), ranks
