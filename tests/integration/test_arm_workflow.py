"""The pipeline on two real devices: this x86 host and an aarch64 board reached over TVM RPC.

The board is the emulated one of tools/arm (qemu-user, an arm64 Debian root filesystem, TVM's aarch64
wheels): prepare.sh builds it once under $DELTAMUT_ARM_ROOT (default <repo>/.cache/arm, a few minutes the
first time, then cached) and board.py serves it on a free loopback port. The study deploys the pretrained
EfficientNet-Lite0 for x86-64 and, cross-compiled, for aarch64, runs three real photos on both devices and
compares them; the assertions read the pipeline's own result files and tables. A mutant (every ReLU6 a
sigmoid: no undefined behaviour, so nothing for the two devices to disagree on) is compared with itself
across the devices, beyond the original's own cross-device difference: MutateNN's headline comparison.

A second test declares a device whose RPC server does not exist: its jobs must end with a clear error
result while the host's results stay complete.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARM = REPO / "tools" / "arm"
ARM_ROOT = Path(os.environ.get("DELTAMUT_ARM_ROOT", REPO / ".cache" / "arm"))
# x86 and aarch64 builds of the same float32 graph may differ by instruction selection and summation order;
# measured on EfficientNet-Lite0: bit-identical logits. The tolerance leaves room for other LLVM versions.
LOGIT_ATOL = 1e-4
AARCH64 = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"],
           "cross_compiler": "aarch64-linux-gnu-g++"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _board(action: str, port: int, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ARM / "board.py"), action, "--port", str(port), "--state-dir", str(state), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _snakemake(workdir: Path, config: dict) -> subprocess.CompletedProcess[str]:
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # the first device is the baseline
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--profile", str(REPO / "profiles" / "local"), "--configfile", str(path), "--cores", "2"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=3000, cwd=workdir)


def _outputs(workdir: Path, model: str, device: str):
    from deltamut.runner.outputs import load_outputs

    return load_outputs(workdir / f"results/{model}/tvm/default/original/infer/{device}/outputs.npz")


def _pair(workdir: Path, model: str, kind: str, a: str) -> pd.Series:
    table = pd.read_csv(workdir / f"results/{model}/compare/per_pair.csv")
    rows = table[(table["kind"] == kind) & (table["a"] == a)]
    assert len(rows) == 1, table[["kind", "a", "b"]]
    return rows.iloc[0]


@pytest.fixture(scope="module")
def rootfs() -> Path:
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(ARM / "prepare.sh"), str(ARM_ROOT)], capture_output=True, text=True,
                          timeout=3600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"prepare.sh: {time.monotonic() - t0:.1f} s\n{proc.stdout[-500:]}")
    return ARM_ROOT / "rootfs"


def test_pretrained_model_agrees_on_x86_and_arm_board(rootfs: Path, labelled_photos, tmp_path: Path) -> None:
    photos, labels = labelled_photos
    work, state, port = tmp_path / "work", tmp_path / "board", _free_port()
    work.mkdir()
    config = {
        "models": {"lite0": {"source": "zoo", "arch": "efficientnet_lite0", "mutants": ["mnn11_relu_to_sigmoid"]}},
        "dataset": {"images": str(photos), "labels": str(labels), "limit": 3},
        "mutation_catalog": str(REPO / "config" / "mutations.yaml"),
        "frameworks": ["onnxruntime"],
        "optimisations": {"default": {"passes": ["DecomposeOpsForInference"]}},
        "targets": {"x86_64": {"kind": "llvm"}, "aarch64": AARCH64},
        "devices": {"cpu": {"target": "x86_64"},
                    "arm": {"target": "aarch64", "rpc": {"host": "127.0.0.1", "port": port},
                            "connect_timeout_s": 30, "session_timeout_s": 240}},
        # one timed run per image: qemu makes every run of the board seconds long. A session (open ~6 s, three
        # images) takes under a minute. Under load the board's forked session child sometimes hangs right after
        # the fork (qemu-user), and the board accepts nothing until the child ends: the session timeout (240 s)
        # has the board kill it, and the open timeout (300 s) retries after that, against a serving board.
        "runner": {"warmup": 0, "repeats": 1, "open_timeout_s": 300, "image_timeout_s": 600},
        # the device pair kernel by kernel: the host's build traced, the board's kernels replayed on the board
        "localise": {"kinds": ["device"], "verdicts": ["identical", "within_noise", "numeric_drift"],
                     "images": 2},
    }
    started = _board("start", port, state, "--root", str(rootfs))
    assert started.returncode == 0, started.stdout + started.stderr
    print(started.stdout.strip())
    try:
        t0 = time.monotonic()
        run = _snakemake(work, config)
        print(f"study (x86 + arm board): {time.monotonic() - t0:.0f} s")
    finally:
        stopped = _board("stop", port, state)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr

    lib = work / "results/lite0/tvm/default/original/deploy/aarch64/lib.so"
    kind = subprocess.run(["file", "-b", "-L", str(lib)], capture_output=True, text=True, check=True).stdout
    assert "ARM aarch64" in kind, kind

    x86, arm = _outputs(work, "lite0", "cpu"), _outputs(work, "lite0", "arm")
    assert list(x86.status) == ["ok"] * 3 and list(arm.status) == ["ok"] * 3, (x86.error, arm.error)
    assert list(x86.ids) == list(arm.ids)
    assert arm.meta["device_info"]["where"] == f"rpc://127.0.0.1:{port}", arm.meta["device_info"]
    assert x86.meta["device_info"]["where"].startswith("local host"), x86.meta["device_info"]
    assert (np.argmax(arm.logits, axis=1) == np.argmax(x86.logits, axis=1)).all()
    diff = float(np.abs(arm.logits - x86.logits).max())
    print(f"max |logit(arm) - logit(x86)| = {diff:.3g}; arm latency ms {arm.latency_ms.ravel().round(0)}")
    assert diff <= LOGIT_ATOL, diff
    # a pretrained model on real photos: confident, and the images are not all one class
    assert len(set(np.argmax(x86.logits, axis=1))) > 1

    pair = _pair(work, "lite0", "device", "tvm/default/original/arm")
    assert pair["b"] == "tvm/default/original/cpu"
    assert pair["n_compared"] == 3 and pair["top1_disagreement_pct"] == 0, pair
    assert pair["max_abs_err"] <= LOGIT_ATOL, pair

    # the mutant on the board against the same mutant on the host: no divergence beyond the original's
    mutant = _pair(work, "lite0", "mutant_device", "tvm/default/mnn11_relu_to_sigmoid/arm")
    assert mutant["b"] == "tvm/default/mnn11_relu_to_sigmoid/cpu" and mutant["n_compared"] == 3, mutant
    assert mutant["verdict"] in ("identical", "within_noise"), mutant  # both mean: the devices agree
    table = pd.read_csv(work / "results/lite0/compare/mutants_across_devices.csv").iloc[0]
    assert (table["device_a"], table["device_b"], table["mutants"], table["diverging"]) == ("arm", "cpu", 1, 0)
    assert table["original_max_abs_err"] == pair["max_abs_err"]
    assert "Mutants across devices" in (work / "results/lite0/compare/summary.md").read_text()

    # the device pair's probe replayed every kernel of the board's build on the board, on the host build's inputs
    # of that call and chained on its own outputs, and the chain ended where the board's own run did
    against = work / "results/lite0/tvm/default/original/localise/arm/against/cpu"
    profile = json.loads((against / "profile.json").read_text())
    assert profile["status"] == "ok" and profile["replayed_on"] == f"llvm on rpc://127.0.0.1:{port}", profile
    kernels = pd.read_parquet(against / "kernels.parquet")
    assert kernels["replay_error"].isna().all() and kernels["local_abs"].notna().all(), kernels
    assert kernels["chain_matches_run"].dropna().tolist() == [True] * len(profile["predicate"]["images"])


def test_unreachable_rpc_device_fails_alone(small_onnx, labelled_photos, tmp_path: Path) -> None:
    photos, labels = labelled_photos
    port = _free_port()  # bound and released: nothing listens there
    config = {
        "models": {"tiny": {"source": "onnx", "path": str(small_onnx), "input_size": 16, "mutants": []}},
        "dataset": {"images": str(photos), "labels": str(labels), "limit": 3},
        "frameworks": ["onnxruntime"],
        "optimisations": {"default": {"passes": ["DecomposeOpsForInference"]}},
        "targets": {"x86_64": {"kind": "llvm"}},
        "devices": {"cpu": {"target": "x86_64"},
                    "ghost": {"target": "x86_64", "rpc": {"host": "127.0.0.1", "port": port},
                              "connect_timeout_s": 5}},
        "runner": {"warmup": 0, "repeats": 1, "retries": 1, "retry_backoff_s": 0.5},
    }
    t0 = time.monotonic()
    run = _snakemake(tmp_path, config)
    print(f"study with an unreachable device: {time.monotonic() - t0:.0f} s")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]

    ghost, cpu = _outputs(tmp_path, "tiny", "ghost"), _outputs(tmp_path, "tiny", "cpu")
    assert set(ghost.status) == {"error"}, ghost.status
    assert all(f"127.0.0.1:{port}" in e and "unreachable" in e for e in ghost.error), ghost.error
    assert [e["event"] for e in ghost.meta["events"]] == ["open_failed", "open_failed"]  # retried once
    assert list(cpu.status) == ["ok"] * 3 and np.isfinite(cpu.logits).all()

    assert _pair(tmp_path, "tiny", "compiler", "tvm/default/original/cpu")["n_ok_a"] == 3
    device = _pair(tmp_path, "tiny", "device", "tvm/default/original/ghost")
    assert device["n_ok_a"] == 0 and device["n_ok_b"] == 3, device
