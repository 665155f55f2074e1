"""torch -> ONNX with the dynamo exporter, as one self-contained file.

The dynamo exporter is the one whose output TVM imports for every zoo model (the legacy exporter's
EfficientNet-Lite has dynamic pads that TVM rejects); `external_data=False` keeps weights inside the
file so it can be cached and copied as one artifact.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from deltamut.fsutil import atomic_path

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def check_onnx(path: str | Path):
    """Load and check an ONNX file; raise ValueError naming the file when it is missing or corrupt."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ValueError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {str(exc)[:300]})") from exc
    return model


def export_model(info, out: str | Path, opset: int = 18, exporter: str = "dynamo") -> dict:
    """Write `info`'s model to `out` as ONNX and return what was done (for provenance).

    `info` is a `deltamut.models.ModelInfo`; a model that already is an ONNX file is checked and copied.
    """
    import torch

    out = Path(out)
    if info.module is None:
        check_onnx(info.onnx_path)
        with atomic_path(out) as tmp:
            shutil.copyfile(info.onnx_path, tmp)
        return {"exporter": "copy", "source": str(info.onnx_path)}
    x = torch.zeros(info.input_shape, dtype=torch.float32)
    with atomic_path(out) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            info.module.eval(),
            (x,),
            str(tmp),
            dynamo=(exporter == "dynamo"),
            external_data=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
        )
        check_onnx(tmp)
    return {"exporter": exporter, "opset": opset}
