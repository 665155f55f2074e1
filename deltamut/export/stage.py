"""Entry points of the export rules: the primary ONNX export, and the conversions DeltaNN compares it with.

A conversion that its exporter cannot make (the legacy exporter has no scaled-dot-product attention below
opset 14, so a Vision Transformer does not convert at opset 13) is a finding about that road to a runtime,
not a broken pipeline: its file becomes a failure record that the runtimes downstream pass on, and the
tables say the conversion failed at export. The primary export has no such fallback: every optimisation and
mutant starts from it, and a model it cannot export is bad input, reported as such.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deltamut.failure import write_failure
from deltamut.outcome import Stage, Status, Symptom


def _recorded(export: Callable[[], Any], out: str | Path, conversion: bool) -> bool:
    """Run `export` (which writes `out`); for a conversion, an exporter's failure becomes a failure record."""
    if not conversion:
        export()
        return True
    try:
        export()
    except Exception as exc:  # any exporter error is the conversion's finding
        traceback.print_exc()
        write_failure(out, Stage.EXPORT, {"status": Status.ERROR, "symptom": Symptom.EXCEPTION,
                                          "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return False
    return True


def export_stage(*, inputs: Mapping[str, str], outputs: Mapping[str, str], name: str, model: dict[str, Any],
                 export: dict[str, Any], conversion: bool) -> bool:
    """`name`'s model (its config entry `model`) to ONNX at `outputs["onnx"]`, with `export`'s exporter, opset
    and batch size; for a `conversion`, a failure of the exporter is recorded, not raised. An ONNX-file model
    is prepared instead (input fixed, shape subgraphs folded), checked on `inputs["inputs"]`, the study's
    images."""
    from deltamut.export.onnx_export import export_model
    from deltamut.models import load_model

    info = load_model(name, model)
    images = None
    if "inputs" in inputs:
        with np.load(inputs["inputs"]) as z:
            images = z["x"]

    def export_it() -> None:
        record = export_model(info, outputs["onnx"], opset=int(export["opset"]), exporter=export["exporter"],
                              batch=int(export["batch"]), images=images)
        print(json.dumps(record))

    return _recorded(export_it, outputs["onnx"], conversion)


def export_program_stage(*, outputs: Mapping[str, str], name: str, model: dict[str, Any]) -> bool:
    """`name`'s model as a torch.export program at `outputs["program"]` (always a conversion)."""
    from deltamut.export.program_export import export_program
    from deltamut.models import load_model

    info = load_model(name, model)
    return _recorded(lambda: export_program(info, outputs["program"]), outputs["program"], conversion=True)
