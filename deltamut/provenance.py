"""Versions of every part that produced a result, recorded with each result file."""

from __future__ import annotations

import platform
import socket
from functools import cache
from importlib import metadata


@cache
def versions() -> dict[str, str]:
    """Package versions, read from installed metadata so that nothing heavy is imported for it."""
    out = {"python": platform.python_version()}
    for dist in ("deltamut", "apache-tvm", "apache-tvm-ffi", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def llvm_version() -> str:
    """The LLVM that TVM was built with (imports tvm: call only where tvm is loaded anyway)."""
    import tvm

    return str(tvm.support.libinfo().get("LLVM_VERSION", "unknown"))


def host() -> dict[str, str]:
    """The machine a job ran on: a cluster job may land on any node."""
    return {"hostname": socket.gethostname(), "machine": platform.machine(), "system": platform.system()}
