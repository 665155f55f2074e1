"""torch -> `torch.export` ExportedProgram: the conversion that reaches TVM without ONNX.

DeltaNN compares models that took different roads from the training framework to the runtime. TVM 0.27
imports an ExportedProgram directly (`tvm.relax.frontend.torch.from_exported_program`), so a model can be
compiled from ONNX and from torch.export under the same optimisation, and any difference is the
conversion's. The program is saved as a `.pt2` file so the compile job reads an artifact, like ONNX.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from deltamut.fsutil import atomic_path


def export_program(info, out: str | Path) -> dict:
    """Export `info`'s module (a `deltamut.models.ModelInfo`) at its input shape and save it to `out`."""
    import torch

    if info.module is None:
        raise ValueError(f"{info.name}: an ONNX-file model has no PyTorch module for torch.export")
    x = torch.zeros(info.input_shape, dtype=torch.float32)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.export.export(info.module.eval(), (x,))
    with atomic_path(Path(out)) as tmp:
        torch.export.save(program, str(tmp))
    return {"exporter": "torch.export", "torch": torch.__version__}
