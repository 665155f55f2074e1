"""TVM RPC server for the emulated aarch64 board.

Run it with the board's own Python under qemu-user::

    qemu-aarch64-static -L ROOTFS ROOTFS/usr/bin/python3.11 tools/arm/rpc_server.py \
        --host 127.0.0.1 --port 9090 [--tracker HOST:PORT --key KEY]

Why not ``python -m tvm.exec.rpc_server``: it starts the listen loop in a PopenWorker, which re-executes
``sys.executable``; without binfmt the kernel cannot exec an aarch64 binary ("Exec format error"). Here the
listen loop of ``tvm.rpc.server`` runs in this process; each session is still a forked child (fork works
under qemu-user, only exec does not).

Why the outer loop: TVM's listen loop raises when a session's child exits non-zero, which would take the
whole board down the first time a mutant segfaults. The board must outlive crashing sessions, so the loop
is restarted after every such error.

Only the standard library and TVM are imported: this file runs inside the board's minimal Python.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time

READY_PREFIX = "RPC_SERVER_READY"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=9090, help="port to bind (exactly this one)")
    parser.add_argument("--tracker", default=None, help="HOST:PORT of an RPC tracker to register with")
    parser.add_argument("--key", default="", help="device key announced to the tracker")
    parser.add_argument("--custom-addr", default=None, help="address reported to the tracker")
    parser.add_argument("--load-library", default=None, help="colon-separated libraries to load per session")
    args = parser.parse_args(argv)
    if args.tracker and not args.key:
        parser.error("--tracker needs --key")
    return args


def _bind(host: str, port: int) -> socket.socket:
    """Bind exactly the requested port: the caller waits on it, so silently moving to another is wrong."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4)
    return sock


def serve(args: argparse.Namespace) -> None:
    """Import TVM, then open the port: a connectable port therefore means a board ready to serve."""
    t0 = time.monotonic()
    import tvm  # noqa: F401  (imported before binding, see docstring)
    from tvm.rpc import server as rpc_server

    tracker_addr = None
    if args.tracker:
        thost, tport = args.tracker.rsplit(":", 1)
        tracker_addr = (thost, int(tport))

    sock = _bind(args.host, args.port)
    print(
        f"{READY_PREFIX} host={args.host} port={args.port} key={args.key or '-'} "
        f"tracker={args.tracker or '-'} pid={os.getpid()} import_s={time.monotonic() - t0:.1f}",
        flush=True,
    )
    home = os.getcwd()
    while True:
        try:
            rpc_server._listen_loop(  # the in-process loop is the point of this file
                sock, args.port, args.key, tracker_addr, args.load_library, args.custom_addr
            )
        except RuntimeError as err:
            # A session child died (segfault, abort); _serving left us in its work dir.
            os.chdir(home)
            logging.getLogger("RPCServer").warning("session failed, serving on: %s", err)
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        serve(args)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
