"""PyTorch eager: the reference every compiled variant is measured against."""

from __future__ import annotations

from typing import Any

import numpy as np


class TorchBackend:
    """Runs the zoo model in eager mode; `dtype: float64` gives the high-precision reference used to
    measure each backend's numeric error."""

    def __init__(self, spec: dict[str, Any]):
        import torch

        from deltamut.models import load_model

        self._torch = torch
        info = load_model(spec["model"], spec["model_spec"])
        if info.module is None:
            raise ValueError(f"model {spec['model']!r} is an ONNX file: it has no PyTorch reference")
        self.dtype = torch.float64 if spec.get("dtype") == "float64" else torch.float32
        self.module = info.module.eval().to(self.dtype)
        if spec.get("threads"):
            torch.set_num_threads(int(spec["threads"]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            out = self.module(self._torch.from_numpy(x).to(self.dtype))
        return out.numpy()

    def info(self) -> dict[str, Any]:
        return {"backend": "torch", "dtype": str(self.dtype).replace("torch.", ""),
                "threads": self._torch.get_num_threads()}

    def close(self) -> None:
        pass
