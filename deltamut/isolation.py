"""Run one library function in a child process with a time limit: a crash becomes a result.

Compiling a mutant can segfault inside LLVM or loop forever in a pass; the seed tools died with it.
`call_isolated` returns what happened (ok, exception, signal, timeout) with the tail of the child's log,
so a stage can record the failure and the workflow goes on with the other variants.
"""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deltamut.outcome import Status, Symptom
from deltamut.procutil import kill_group, spawn


@dataclass
class Isolated:
    ok: bool
    value: Any = None
    symptom: Symptom | None = None  # how it ended, when it did not return
    error: str = ""
    returncode: int | None = None
    log_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """In the vocabulary of deltamut.outcome.Status."""
        return Status.OK.value if self.ok else Symptom(self.symptom).status.value

    def as_record(self) -> dict[str, Any]:
        return {"status": self.status, "symptom": str(self.symptom or ""), "error": self.error,
                "returncode": self.returncode, "log_tail": self.log_tail}


def _tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _importable_name(func: Callable[..., Any]) -> str:
    """`package.module:function`, the name a fresh interpreter imports `func` by; only module-level functions
    of an importable module qualify."""
    module, name = getattr(func, "__module__", None), getattr(func, "__qualname__", "")
    if not module or module == "__main__" or "." in name or "<" in name:
        raise ValueError(f"{func!r}: an isolated call needs a module-level function of an importable module")
    return f"{module}:{name}"


def call_isolated(func: Callable[..., Any], kwargs: dict[str, Any], timeout_s: float,
                  log_path: str | Path) -> Isolated:
    """Call `func` (a module-level function) with JSON-serialisable `kwargs` in a fresh interpreter."""
    func = _importable_name(func)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="deltamut-iso-") as tmp:
        args, result = Path(tmp) / "args.json", Path(tmp) / "result.json"
        args.write_text(json.dumps(kwargs))
        with open(log_path, "ab") as log:
            proc = spawn([sys.executable, "-m", "deltamut.isolation", func, str(args), str(result)],
                         stdout=log, stderr=log)
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                return Isolated(False, symptom=Symptom.TIMEOUT, error=f"{func} did not finish within {timeout_s:g} s",
                                log_tail=_tail(log_path))
        if result.exists():
            out = json.loads(result.read_text())
            if out.get("ok"):
                return Isolated(True, value=out.get("value"), returncode=rc)
            return Isolated(False, symptom=Symptom.EXCEPTION, error=out["error"], returncode=rc,
                            log_tail=_tail(log_path))
        if rc < 0:
            name = signal.Signals(-rc).name
            return Isolated(False, symptom=Symptom.SIGNAL, error=f"{func} killed by signal {-rc} ({name})",
                            returncode=rc, log_tail=_tail(log_path))
        return Isolated(False, symptom=Symptom.EXIT, error=f"{func} exited with code {rc} without a result",
                        returncode=rc, log_tail=_tail(log_path))


def import_tvm_without_torch() -> None:
    """Import TVM with torch hidden. tvm_ffi imports torch first thing (a workaround for a symbol clash seen
    on Windows), 2-4 s per process that no TVM call of ours needs; a later `import torch` still works."""
    if "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # makes `import torch` raise ImportError, which tvm_ffi tolerates
    try:
        import tvm  # noqa: F401
    finally:
        del sys.modules["torch"]


def _main(func: str, args_path: str, result_path: str) -> int:
    module, name = func.split(":")
    import_tvm_without_torch()  # every isolated call is a TVM call
    kwargs = json.loads(Path(args_path).read_text())
    try:
        value = getattr(importlib.import_module(module), name)(**kwargs)
    except Exception as exc:
        traceback.print_exc()
        Path(result_path).write_text(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}))
        return 1
    Path(result_path).write_text(json.dumps({"ok": True, "value": value}, default=str))
    return 0


if __name__ == "__main__":
    from deltamut.procutil import exit_now

    exit_now(_main(*sys.argv[1:4]))
