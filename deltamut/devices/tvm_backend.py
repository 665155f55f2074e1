"""A TVM library run by the Relax VM, on this host or on a device reached over TVM RPC."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np

from deltamut.devices.base import BackendError


def _device(api, kind: str):
    """The TVM device object for a target kind on a local runtime or an RPC session."""
    return api.cuda(0) if kind == "cuda" else api.cpu(0)


class TvmBackend:
    """Spec: `lib` (path of the exported library), `target_kind` (llvm | cuda) and an optional `rpc`
    (`host`, `port`) or `tracker` (`host`, `port`, `key`) with `connect_timeout_s` / `session_timeout_s`."""

    def __init__(self, spec: dict[str, Any]):
        import tvm
        from tvm.runtime.vm import VirtualMachine  # also in a runtime-only TVM (no tvm.relax)

        self._tvm = tvm
        self.spec = spec
        lib = Path(spec["lib"])
        kind = spec.get("target_kind", "llvm")
        self.remote = None
        if spec.get("rpc") or spec.get("tracker"):
            self.remote = self._connect(spec)
            self.remote.upload(str(lib))
            module = self.remote.load_module(lib.name)
            self.dev = _device(self.remote, kind)
        else:
            module = tvm.runtime.load_module(str(lib))
            self.dev = _device(tvm, kind)
        if not self.dev.exist:
            raise BackendError(f"device {kind}(0) does not exist on {self._where()}")
        self.module = module  # its kernels are callable one by one (deltamut.localise.kernels.DeviceBuild)
        self.vm = VirtualMachine(module, self.dev)
        self.main = self.vm["main"]

    def _connect(self, spec: dict[str, Any]):
        from tvm import rpc

        timeout = float(spec.get("session_timeout_s", 0) or 0)
        connect_timeout = float(spec.get("connect_timeout_s", 30))
        try:
            if spec.get("tracker"):
                t = spec["tracker"]
                tracker = rpc.connect_tracker(t["host"], int(t["port"]))
                return tracker.request(t["key"], session_timeout=timeout, max_retry=1)
            r = spec["rpc"]
            _probe(r["host"], int(r["port"]), connect_timeout)
            return rpc.connect(r["host"], int(r["port"]), session_timeout=timeout)
        except BackendError:
            raise
        except Exception as exc:  # TVM wraps socket errors in its own error types
            raise BackendError(f"cannot open a TVM RPC session on {self._where()}: {exc}", transient=True) \
                from exc

    def _where(self) -> str:
        return where(self.spec)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.main(self._tvm.runtime.tensor(x, self.dev))
        if not hasattr(out, "numpy"):
            out = out[0]
        return out.numpy()

    def info(self) -> dict[str, Any]:
        return {"backend": "tvm", "device": str(self.dev), "where": self._where()}

    def close(self) -> None:
        self.vm = self.main = self.module = None
        self.remote = None


def where(spec: dict[str, Any]) -> str:
    """Where a backend spec's library runs, as results name it."""
    if spec.get("rpc"):
        return f"rpc://{spec['rpc']['host']}:{spec['rpc']['port']}"
    if spec.get("tracker"):
        t = spec["tracker"]
        return f"tracker://{t['host']}:{t['port']}/{t['key']}"
    return f"local host {socket.gethostname()}"


def _probe(host: str, port: int, timeout: float) -> None:
    """Fail fast with a clear message when nothing listens, instead of TVM's long retry loop."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise BackendError(f"RPC device {host}:{port} is unreachable ({exc})", transient=True) from exc
