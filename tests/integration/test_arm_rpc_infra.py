"""The emulated aarch64 board is a real TVM RPC device: cross-compiled models run on it and match x86.

Prepares (or reuses) the board root under $DELTAMUT_ARM_ROOT (default <repo>/.cache/arm; ~600 MB, a few
minutes the first time), then drives tools/arm/board.py through its command line as the pipeline will.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ARM = REPO / "tools" / "arm"
ARM_ROOT = Path(os.environ.get("DELTAMUT_ARM_ROOT", REPO / ".cache" / "arm"))
AARCH64_TARGET = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphaned zombie may linger until init reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _board(action: str, port: int, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ARM / "board.py"), action, "--port", str(port), "--state-dir", str(state), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def rootfs() -> Path:
    proc = subprocess.run(
        ["bash", str(ARM / "prepare.sh"), str(ARM_ROOT)], capture_output=True, text=True, timeout=3600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout)
    return ARM_ROOT / "rootfs"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    """A small conv net, compiled for x86 (the reference) and cross-compiled for aarch64."""
    import torch
    import tvm
    from tvm import relax
    from tvm.relax.frontend.torch import from_exported_program
    from tvm.support import cc

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(16, 16, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.AdaptiveAvgPool2d(1),
                torch.nn.Flatten(),
                torch.nn.Linear(16, 10),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype("float32")
    net = Net().eval()
    with torch.no_grad():
        ep = torch.export.export(net, (torch.from_numpy(x),))
        expected_torch = net(torch.from_numpy(x)).numpy()
    mod = from_exported_program(ep, keep_params_as_input=False, unwrap_unit_return_tuple=True)
    mod = relax.get_pipeline("zero")(mod)

    x86 = tvm.compile(mod, tvm.target.Target("llvm"))
    ref = relax.VirtualMachine(x86, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    np.testing.assert_allclose(ref, expected_torch, rtol=1e-4, atol=1e-4)

    out = tmp_path_factory.mktemp("arm") / "net_aarch64.so"
    arm = tvm.compile(mod, tvm.target.Target(AARCH64_TARGET))
    arm.export_library(str(out), fcompile=cc.cross_compiler("aarch64-linux-gnu-g++"))
    return x, ref, out


def _crashing_library(path: Path) -> Path:
    """An aarch64 shared object that segfaults when loaded: a session that dies like a bad mutant."""
    src = path.with_suffix(".c")
    src.write_text("__attribute__((constructor)) static void boom(void) { *(volatile int *)0 = 1; }\n")
    subprocess.run(["aarch64-linux-gnu-gcc", "-shared", "-fPIC", "-o", str(path), str(src)], check=True)
    return path


def test_board_runs_cross_compiled_model(rootfs: Path, models, tmp_path: Path) -> None:
    import tvm
    from tvm import relax, rpc

    x, ref, lib = models
    kind = subprocess.run(["file", "-b", str(lib)], capture_output=True, text=True, check=True).stdout
    assert "ARM aarch64" in kind and "shared object" in kind, kind

    port, state = _free_port(), tmp_path / "state"
    started = _board("start", port, state, "--root", str(rootfs))
    assert started.returncode == 0, started.stdout + started.stderr
    print(started.stdout)
    try:
        assert _port_open(port)
        # Idempotent start: a second call finds the live board and leaves it alone.
        again = _board("start", port, state, "--root", str(rootfs))
        assert again.returncode == 0 and "in 0.0 s" in again.stdout, again.stdout + again.stderr
        pid = int((state / f"board-{port}.pid").read_text())

        # Session 1: upload, load, run on the emulated device.
        sess = rpc.connect("127.0.0.1", port, session_timeout=600)
        sess.upload(str(lib))
        rlib = sess.load_module(lib.name)
        dev = sess.cpu()
        vm = relax.VirtualMachine(rlib, dev)
        t0 = time.monotonic()
        got = vm["main"](tvm.runtime.tensor(x, dev)).numpy()
        print(f"aarch64 inference under qemu: {time.monotonic() - t0:.2f} s")
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
        del vm, rlib, dev, sess

        # Session 2: a session that segfaults on the board must not take the board down.
        bad = _crashing_library(tmp_path / "crash.so")
        sess = rpc.connect("127.0.0.1", port, session_timeout=120)
        sess.upload(str(bad))
        with pytest.raises(Exception):  # noqa: B017  (the client sees a dropped connection, type varies)
            sess.load_module(bad.name)
        del sess

        # Session 3: the same board serves again, same server process.
        sess = rpc.connect("127.0.0.1", port, session_timeout=600)
        sess.upload(str(lib))
        vm = relax.VirtualMachine(sess.load_module(lib.name), sess.cpu())
        got2 = vm["main"](tvm.runtime.tensor(x, sess.cpu())).numpy()
        np.testing.assert_allclose(got2, ref, rtol=1e-5, atol=1e-5)
        assert int((state / f"board-{port}.pid").read_text()) == pid
        del vm, sess
    finally:
        stopped = _board("stop", port, state)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not _port_open(port)
    assert not (state / f"board-{port}.pid").exists()
    assert not _running(pid)
    assert _board("status", port, state).returncode == 3


def test_board_serves_through_tracker(rootfs: Path, models, tmp_path: Path) -> None:
    """Registered with a tracker, the board is found by key and refuses direct connections."""
    import tvm
    from tvm import relax, rpc

    x, ref, lib = models
    tport, port, state = _free_port(), _free_port(), tmp_path / "state"
    tracker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tvm.exec.rpc_tracker",
            "--host",
            "127.0.0.1",
            "--port",
            str(tport),
            "--port-end",
            str(tport + 1),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not _port_open(tport):
            assert tracker.poll() is None and time.monotonic() < deadline, "tracker did not start"
            time.sleep(0.2)
        started = _board(
            "start", port, state, "--root", str(rootfs), "--tracker", f"127.0.0.1:{tport}", "--key", "arm64-test"
        )
        assert started.returncode == 0, started.stdout + started.stderr
        try:
            sess = rpc.connect_tracker("127.0.0.1", tport).request("arm64-test", session_timeout=600)
            sess.upload(str(lib))
            vm = relax.VirtualMachine(sess.load_module(lib.name), sess.cpu())
            got = vm["main"](tvm.runtime.tensor(x, sess.cpu())).numpy()
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
            del vm, sess
            with pytest.raises(Exception):  # noqa: B017  (key mismatch surfaces as a TVM error)
                rpc.connect("127.0.0.1", port)
        finally:
            stopped = _board("stop", port, state)
        assert stopped.returncode == 0 and not _port_open(port)
    finally:
        os.killpg(tracker.pid, 15)
        tracker.wait(timeout=30)


@pytest.fixture(scope="module")
def board(rootfs: Path, tmp_path_factory: pytest.TempPathFactory):
    """A running board's RPC address, stopped after the module's tests."""
    port, state = _free_port(), tmp_path_factory.mktemp("board")
    started = _board("start", port, state, "--root", str(rootfs))
    assert started.returncode == 0, started.stdout + started.stderr
    yield {"host": "127.0.0.1", "port": port}
    _board("stop", port, state)


ARM_BUILD = {**AARCH64_TARGET, "cross_compiler": "aarch64-linux-gnu-g++"}


def _on_board(board: dict) -> dict:
    """The board as a device pair's probe reaches it (fused multiply-add in every multiply-add kernel, as NEON
    has it)."""
    return {"target_kind": "llvm", "rpc": board, "session_timeout_s": 300}


def test_a_device_pair_is_rooted_on_the_board_at_the_kernels_whose_code_differs(board, small_onnx, device_pair):
    """The host's build without FMA (`mattr: -fma`) against the board's, whose multiply-adds NEON fuses: each of
    the board's kernels, replayed on the board on the host build's inputs of that call, adds error by itself
    exactly where it multiplies and adds (both convolutions, the classifier's matmul), not in pooling or the
    mean; the root is the stem's convolution, found by replay; the board's chain of kernels ends where its own
    VM run ends."""
    assert " fma " in f" {Path('/proc/cpuinfo').read_text()} ", "the planted difference needs a host with FMA"
    record, table = device_pair(small_onnx, "default", {"kind": "llvm", "mattr": ["-fma"]}, ARM_BUILD,
                                _on_board(board))
    assert record["status"] == "ok" and record["confirmed"]["holds"], record
    assert set(table.loc[table["local_departs"], "kernel"]) == {
        "fused_conv2d_add_maximum_minimum", "fused_conv2d1_add1_relu_add2", "fused_matmul_add3"}
    assert (table.loc[table["kernel"].isin(["max_pool2d", "mean"]), "local_abs"] == 0).all()
    assert (record["root_kernel"], record["root_by"], record["root_index"]) == (
        "fused_conv2d_add_maximum_minimum", "replay", 0)
    assert table["chain_matches_run"].dropna().tolist() == [True, True]


def test_a_device_pair_the_board_reproduces_bit_for_bit_departs_nowhere(board, small_onnx, device_pair):
    """The control: the host's build with FMA against the board's, which fuse the same multiply-adds and sum in
    the same order: no kernel replayed on the board departs, nor does any chained output, and the predicate
    (logits move) does not hold."""
    record, table = device_pair(small_onnx, "default", {"kind": "llvm"}, ARM_BUILD, _on_board(board))
    assert record["status"] == "ok" and not record["confirmed"]["holds"] and record["root"] is None, record
    assert (table["local_abs"] == 0).all() and (table["propagated_abs"] == 0).all()
