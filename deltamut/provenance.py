"""Versions of every part that produced a result, recorded with each result file."""

from __future__ import annotations

import hashlib
import platform
import socket
from functools import cache
from importlib import metadata
from pathlib import Path


@cache
def versions() -> dict[str, str]:
    """Package versions, read from installed metadata so that nothing heavy is imported for it."""
    out = {"python": platform.python_version()}
    for dist in ("deltamut", "apache-tvm", "apache-tvm-ffi", "torch", "onnx", "onnxscript", "onnxruntime", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


# What makes each cached stage's artifact: packages (by their installed version) and deltamut's own packages (by
# a digest of their source, since deltamut's version number does not change with its code).
_STAGE_SOFTWARE = {
    "export": (("torch", "onnx", "onnxscript"), ("export", "models")),
    "import": (("apache-tvm", "apache-tvm-ffi", "onnx", "torch"), ("compiler",)),
    "compile": (("apache-tvm", "apache-tvm-ffi"), ("compiler",)),
}


def stage_software(stage: str) -> dict[str, str]:
    """The versions a cached stage's artifact depends on: the between-workflow cache keys it by them, so a TVM
    upgrade (or a change to deltamut's exporter) builds anew instead of reusing a stale graph."""
    dists, packages = _STAGE_SOFTWARE[stage]
    found = versions()
    out = {d: found[d] if d in found else _version(d) for d in dists}
    out.update({f"deltamut.{p}": _source_digest(p) for p in packages})
    return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


@cache
def _source_digest(package: str) -> str:
    """sha256 over the Python sources of one deltamut package, in name order."""
    h = hashlib.sha256()
    for path in sorted((Path(__file__).parent / package).rglob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def llvm_version() -> str:
    """The LLVM that TVM was built with (imports tvm: call only where tvm is loaded anyway)."""
    import tvm

    return str(tvm.support.libinfo().get("LLVM_VERSION", "unknown"))


def host() -> dict[str, str]:
    """The machine a job ran on: a cluster job may land on any node."""
    return {"hostname": socket.gethostname(), "machine": platform.machine(), "system": platform.system()}
