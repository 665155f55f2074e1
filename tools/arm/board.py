"""Start and stop an emulated aarch64 TVM RPC board (qemu-user + the root filesystem of prepare.sh).

    python tools/arm/board.py start --root DIR/rootfs --port 9090 [--host 127.0.0.1]
                                    [--tracker HOST:PORT --key KEY] [--state-dir D] [--timeout 180]
    python tools/arm/board.py stop  --port 9090 [--state-dir D]
    python tools/arm/board.py status --port 9090 [--state-dir D]

State (PID file ``board-PORT.pid``, log ``board-PORT.log``) lives in --state-dir, default
$DELTAMUT_ARM_STATE or /run/deltamut-arm. One board per port.

Why a process group: the RPC server forks one child per session, and a child left behind keeps the port
bound; stopping kills the whole group (qemu runs every forked child as its own qemu process in that group).
Why wait on the port: the server imports TVM (about 10 s emulated) before it binds, so an open port means a
board ready to take sessions.

Host-side only, standard library only (runs before any venv exists in CI).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVER = HERE / "rpc_server.py"
DEFAULT_STATE = os.environ.get("DELTAMUT_ARM_STATE", "/run/deltamut-arm")


@dataclass(frozen=True)
class Board:
    """Where a running board listens and where its state lives."""

    host: str
    port: int
    pid: int
    pid_file: Path
    log_file: Path
    startup_s: float


def _paths(state_dir: Path, port: int) -> tuple[Path, Path]:
    return state_dir / f"board-{port}.pid", state_dir / f"board-{port}.log"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Connect and close at once; the server drops a peer that sends no handshake and keeps listening."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def board_command(root: Path, host: str, port: int, tracker: str | None, key: str) -> list[str]:
    """The exact command line of a board, for logs and for users who want to run it by hand."""
    qemu = shutil.which("qemu-aarch64-static") or "qemu-aarch64-static"
    python = root / "usr" / "bin" / "python3.11"
    cmd = [qemu, "-L", str(root), str(python), "-u", str(SERVER), "--host", host, "--port", str(port)]
    if tracker:
        cmd += ["--tracker", tracker, "--key", key]
    return cmd


def start(
    root: Path,
    port: int,
    host: str = "127.0.0.1",
    tracker: str | None = None,
    key: str = "",
    state_dir: Path = Path(DEFAULT_STATE),
    timeout: float = 180.0,
) -> Board:
    """Start a board in the background (idempotent: a live board on this port is returned as is)."""
    root = Path(root).resolve()
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    pid_file, log_file = _paths(state_dir, port)
    old = _read_pid(pid_file)
    if old is not None and _alive(old) and port_open(host, port):
        return Board(host, port, old, pid_file, log_file, 0.0)
    if old is not None:
        stop(port, state_dir)
    if port_open(host, port):
        raise RuntimeError(f"{host}:{port} is already taken by a process that is not a board of {state_dir}")
    if not (root / "usr" / "bin" / "python3.11").exists():
        raise FileNotFoundError(f"{root} is not a prepared board root (run tools/arm/prepare.sh first)")

    cmd = board_command(root, host, port, tracker, key)
    t0 = time.monotonic()
    with open(log_file, "wb") as log:
        log.write(("$ " + " ".join(cmd) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=state_dir,
        )
    pid_file.write_text(f"{proc.pid}\n")
    while not port_open(host, port):
        if proc.poll() is not None:
            pid_file.unlink(missing_ok=True)
            raise RuntimeError(f"board exited with {proc.returncode}:\n{log_file.read_text()[-3000:]}")
        if time.monotonic() - t0 > timeout:
            stop(port, state_dir)
            raise TimeoutError(f"board not listening after {timeout:.0f} s:\n{log_file.read_text()[-3000:]}")
        time.sleep(0.5)
    return Board(host, port, proc.pid, pid_file, log_file, time.monotonic() - t0)


def stop(port: int, state_dir: Path = Path(DEFAULT_STATE), host: str = "127.0.0.1", timeout: float = 20.0) -> bool:
    """Kill the board's process group; True if a board was running. The port is closed on return."""
    pid_file, _ = _paths(Path(state_dir), port)
    pid = _read_pid(pid_file)
    if pid is None:
        return False
    was_alive = _alive(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + timeout / 2
        while time.monotonic() < deadline and (_group_alive(pid) or port_open(host, port, 0.2)):
            time.sleep(0.2)
        if not _group_alive(pid):
            break
    _reap(pid)
    pid_file.unlink(missing_ok=True)
    return was_alive


def _group_alive(pgid: int) -> bool:
    """Any non-zombie process left in the group (session children included)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _reap(pid: int) -> None:
    """Collect the exit status when the board is our own child (same-process start/stop, as in tests)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="emulated aarch64 TVM RPC board")
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--root", type=Path, help="board root filesystem (DIR/rootfs of prepare.sh)")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tracker", default=None, help="HOST:PORT of an RPC tracker")
    parser.add_argument("--key", default="", help="device key for the tracker")
    parser.add_argument("--state-dir", type=Path, default=Path(DEFAULT_STATE))
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the port")
    args = parser.parse_args(argv)

    if args.action == "start":
        if args.root is None:
            parser.error("start needs --root")
        if args.tracker and not args.key:
            parser.error("--tracker needs --key")
        board = start(args.root, args.port, args.host, args.tracker, args.key, args.state_dir, args.timeout)
        print(
            f"board up on {board.host}:{board.port} pid={board.pid} in {board.startup_s:.1f} s "
            f"(pid file {board.pid_file}, log {board.log_file})"
        )
        return 0
    if args.action == "stop":
        was = stop(args.port, args.state_dir, args.host)
        print(f"board on port {args.port} {'stopped' if was else 'was not running'}")
        return 0
    pid = _read_pid(_paths(args.state_dir, args.port)[0])
    up = pid is not None and _alive(pid) and port_open(args.host, args.port)
    print(f"board on port {args.port}: {'up, pid ' + str(pid) if up else 'down'}")
    return 0 if up else 3


if __name__ == "__main__":
    sys.exit(_main())
