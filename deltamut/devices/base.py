"""The backend interface and the registry that maps a backend spec's `kind` to its factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np


class BackendError(RuntimeError):
    """A backend could not be opened (unreachable device, unloadable library): a deterministic failure
    unless `transient` says a retry may help."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class Backend(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


def _torch(spec: dict[str, Any]) -> Backend:
    from deltamut.devices.torch_backend import TorchBackend

    return TorchBackend(spec)


def _onnxruntime(spec: dict[str, Any]) -> Backend:
    from deltamut.devices.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(spec)


def _tvm(spec: dict[str, Any]) -> Backend:
    from deltamut.devices.tvm_backend import TvmBackend

    return TvmBackend(spec)


# Factories import their framework lazily: a worker for ONNX Runtime never pays for importing TVM.
FACTORIES: dict[str, Callable[[dict[str, Any]], Backend]] = {
    "torch": _torch,
    "onnxruntime": _onnxruntime,
    "tvm": _tvm,
}


def open_backend(spec: dict[str, Any]) -> Backend:
    kind = spec.get("kind")
    if kind not in FACTORIES:
        raise BackendError(f"unknown backend kind {kind!r}; known: {sorted(FACTORIES)}")
    return FACTORIES[kind](spec)
