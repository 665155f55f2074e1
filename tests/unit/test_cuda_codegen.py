"""The CUDA target without a GPU: the deploy path builds and packages real CUDA kernels, and nvcc turns
them into PTX offline. Running them needs a GPU host (libcuda); everything before that is checked here.

nvcc is part of the test environment (CI installs the CUDA toolkit): without it this test fails, naming
what is missing, instead of silently testing less.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from deltamut.compiler.build import build_library, schedule
from deltamut.compiler.importer import import_onnx
from deltamut.compiler.optconfig import OptConfig
from deltamut.compiler.passes import lower, optimise_graph
from deltamut.compiler.targets import make_target

CUDA = {"kind": "cuda", "arch": "sm_80"}
KERNEL = re.compile(r'extern "C" __global__ void __launch_bounds__\(\d+\) (\w+)\(')


def _nvcc() -> str:
    found = shutil.which("nvcc") or next(
        (str(p) for p in sorted(Path("/usr/local").glob("cuda*/bin/nvcc"), reverse=True) if p.is_file()), None)
    if found is None:
        pytest.fail("nvcc not found on PATH nor under /usr/local/cuda*/bin: install the CUDA toolkit "
                    "(e.g. apt-get install cuda-nvcc-13-0 from NVIDIA's repository) to test PTX generation")
    return found


@pytest.fixture(scope="module")
def lowered(small_onnx):
    opt = OptConfig.from_dict("default", {"passes": ["DecomposeOpsForInference"]})
    return lower(optimise_graph(import_onnx(small_onnx), opt), opt), opt


def _primfuncs(mod) -> set[str]:
    from tvm import tirx

    return {gv.name_hint for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)}


def _modules(mod) -> list:
    """A runtime module and everything it imports, depth first."""
    return [mod, *(m for sub in mod.imports for m in _modules(sub))]


def test_cuda_library_embeds_a_kernel_per_primfunc(lowered, tmp_path: Path) -> None:
    mod, opt = lowered
    info = build_library(mod, CUDA, opt, tmp_path / "lib.so")
    assert '"kind":"cuda"' in info["target"] and '"arch":"sm_80"' in info["target"], info

    lib = tmp_path / "lib.so"
    kind = subprocess.run(["file", "-b", str(lib)], capture_output=True, text=True, check=True).stdout
    assert "x86-64" in kind and "shared object" in kind, kind  # the host side, linked for this machine
    kernels = set(KERNEL.findall(lib.read_bytes().decode("latin-1")))
    funcs = _primfuncs(mod)
    assert funcs, "the lowered module has no PrimFuncs"
    # every kernel of the model reaches the library as CUDA source, and nothing else does
    assert {k.removesuffix("_kernel") for k in kernels} == funcs, (sorted(kernels), sorted(funcs))


def test_cuda_source_compiles_to_ptx_offline(lowered, tmp_path: Path) -> None:
    import tvm
    from tvm.support import nvcc

    nvcc_path = _nvcc()
    os.environ["PATH"] = f"{Path(nvcc_path).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    mod, opt = lowered
    target = make_target(CUDA)
    with opt.pass_context():
        exe = tvm.compile(schedule(mod, target, CUDA, opt)[0], target)
    (device_mod,) = [m for m in _modules(exe.mod) if m.kind == "cuda"]  # vm -> llvm host -> cuda
    source = device_mod.inspect_source()

    # the same source is what the deploy stage packages
    build_library(mod, CUDA, opt, tmp_path / "lib.so")
    assert source.encode() in (tmp_path / "lib.so").read_bytes()

    with target:
        ptx = bytes(nvcc.compile_cuda(source, target_format="ptx", compiler="nvcc")).decode()
    assert re.search(r"^\.target sm_80\b", ptx, re.M), ptx[:500]
    entries = set(re.findall(r"^\.visible \.entry (\w+)\(", ptx, re.M))
    assert entries == set(KERNEL.findall(source)) and entries, (sorted(entries), ptx[:500])
