"""The conda environments of cluster nodes (envs/cpu.yaml, cuda.yaml, arm.yaml), written from requirements.txt.

Three hand-kept copies of the pins drift (one lacked the SLURM job-step plugin that every cluster job runs),
and a node whose TVM or tvm-ffi differs from the submit host's builds different code or cannot read its
libraries. So requirements.txt is the one list; each environment adds only what its node kind needs (the
CPU build of torch on x86, NVRTC on GPU nodes) and drops the test tools. `python -m deltamut.envfiles` writes
the files; a unit test fails when a committed file differs from what this writes.

    .venv/bin/python -m deltamut.envfiles          # rewrite envs/*.yaml
    .venv/bin/python -m deltamut.envfiles --check  # exit 1 if any differs
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements.txt"
ENV_DIR = REPO / "envs"
DEV_ONLY = {"pytest", "hypothesis", "ruff"}  # tests and lint: not needed on a compute node
CPU_TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class EnvFile:
    name: str
    header: str
    pip_options: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # further pip lines, after requirements.txt's


ENVS = (
    EnvFile("cpu", """# x86-64 CPU nodes: every rule of the workflow (a device without `env:` and a CPU target).
#   conda env create -f envs/cpu.yaml && conda activate deltamut-cpu
# torch comes from PyTorch's CPU index: PyPI's Linux wheel of torch 2.13.0 is a multi-GB CUDA build.""",
            pip_options=(CPU_TORCH_INDEX,)),
    EnvFile("cuda", """# GPU nodes: infer jobs of devices with a CUDA target (or `env: cuda`), plus NVRTC.
#   conda env create -f envs/cuda.yaml && conda activate deltamut-cuda
# The driver (libcuda) comes from the node. TVM compiles the CUDA source embedded in each library when it
# loads it, through NVRTC (cuda-bindings) or, with TVM_CUDA_COMPILE_MODE=nvcc, the toolkit's nvcc. torch is
# only needed for the torch reference and export; the CPU build keeps the environment small.""",
            pip_options=(CPU_TORCH_INDEX,),
            extra=("# NVRTC for TVM (its CUDA kernel profile names NVRTC 13.2); needs a CUDA 13 driver on the node",
                   "cuda-bindings==13.2.0", "nvidia-cuda-nvrtc==13.2.78")),
    EnvFile("arm", """# aarch64 nodes: infer jobs of devices that run on the ARM node itself (an aarch64 target
# without rpc, or `env: arm`). TVM, numpy and onnxruntime publish manylinux aarch64 wheels of these
# versions (the board of tools/arm uses the same TVM wheels); PyPI's aarch64 torch is CPU-only.
#   conda env create -f envs/arm.yaml && conda activate deltamut-arm      (on an ARM node)
# SLURM jobs run the submitting host's Python path (sys.executable): create this environment at the same
# path on the ARM nodes as the x86 one on the submit host, or submit with --precommand that activates it
# (docs/clusters.md)."""),
)


def _pip_lines(requirements: str) -> list[str]:
    """requirements.txt's pins and their comments, without the file's leading header and the test tools."""
    lines, started = [], False
    for raw in requirements.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if started:
                lines.append(line)
            continue
        started = True
        name = line.split("==")[0].split("[")[0].strip().lower()
        if name not in DEV_ONLY:
            lines.append(line)
    while lines and lines[-1].startswith("#"):  # a comment whose pins were all dropped
        lines.pop()
    return [ln for i, ln in enumerate(lines)
            if not (ln.startswith("#") and (i + 1 == len(lines) or lines[i + 1].startswith("#")))]


def render(env: EnvFile, requirements: str) -> str:
    """The text of one environment file."""
    pip = [*env.pip_options, *_pip_lines(requirements), *env.extra]
    body = "\n".join(f"      {p}" if p.startswith("#") else f"      - {p}" for p in pip)
    return (f"{env.header}\n# Generated from requirements.txt by `python -m deltamut.envfiles`: edit that file.\n"
            f"name: deltamut-{env.name}\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n"
            f"  - pip:\n{body}\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report files that differ, write nothing")
    args = ap.parse_args(argv)
    requirements = REQUIREMENTS.read_text()
    stale = []
    for env in ENVS:
        path, text = ENV_DIR / f"{env.name}.yaml", render(env, requirements)
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
    for path in stale:
        print(f"{'differs' if args.check else 'wrote'}: {path.relative_to(REPO)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
