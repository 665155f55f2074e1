"""IRModules as files: the interface between compile, mutate and deploy.

`tvm.ir.save_json` embeds constants (the weights), so one file holds everything a later stage needs.
It needs apache-tvm-ffi 0.1.14.post1: 0.1.15 segfaults while serialising TVM IR.
"""

from __future__ import annotations

from pathlib import Path

from deltamut.fsutil import atomic_path


def save_module(mod, path: str | Path) -> None:
    import tvm

    with atomic_path(path) as tmp:
        tmp.write_text(tvm.ir.save_json(mod))


def load_module(path: str | Path):
    import tvm

    path = Path(path)
    try:
        return tvm.ir.load_json(path.read_text())
    except FileNotFoundError:
        raise
    except Exception as exc:  # TVM raises its own error types for malformed JSON
        raise ValueError(f"{path}: not a readable TVM IRModule file ({type(exc).__name__}: {exc})") from exc
