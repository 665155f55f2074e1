"""Entry point of the export stages: the primary ONNX export, and the conversions DeltaNN compares it with.

A conversion that its exporter cannot make (the legacy exporter has no scaled-dot-product attention below
opset 14, so a Vision Transformer does not convert at opset 13) is a finding about that road to a runtime,
not a broken pipeline: its file becomes a failure record that the runtimes downstream pass on, and the
tables say the conversion failed at export. The primary export has no such fallback: every optimisation and
mutant starts from it, and a model it cannot export is bad input, reported as such.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deltamut.failure import write_failure


def export_stage(export: Callable[[], Any], out: str | Path, conversion: bool) -> bool:
    """Run `export` (which writes `out`); for a conversion, an exporter's failure becomes a failure record."""
    if not conversion:
        export()
        return True
    try:
        export()
    except Exception as exc:  # any exporter error is the conversion's finding
        traceback.print_exc()
        write_failure(out, "export", {"status": "error", "symptom": "exception",
                                      "error": f"{type(exc).__name__}: {exc}"[:2000]})
        return False
    return True
