"""ONNX Runtime on the CPU: the second framework, and the latency yardstick for compiled code."""

from __future__ import annotations

from typing import Any

import numpy as np


class OnnxRuntimeBackend:
    def __init__(self, spec: dict[str, Any]):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if spec.get("threads"):
            options.intra_op_num_threads = int(spec["threads"])
        self.session = ort.InferenceSession(spec["onnx"], options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.version = ort.__version__

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def info(self) -> dict[str, Any]:
        return {"backend": "onnxruntime", "onnxruntime": self.version, "provider": "CPUExecutionProvider"}

    def close(self) -> None:
        pass
