"""Child processes that can be killed as a group and that die with their parent.

Isolated steps run in their own process group so a timeout can kill everything they started; and on
Linux they ask the kernel for SIGKILL when their parent dies, so a workflow killed with SIGKILL leaves no
orphan compiling or looping forever with nobody left to enforce its time limit.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(args: list[str], **kwargs: Any) -> subprocess.Popen:
    """Popen in a new session that is SIGKILLed when this process dies."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen(args, preexec_fn=_die_with_parent, **kwargs)


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def exit_now(code: int) -> None:
    """End a child process without the interpreter's teardown, once everything it owes is on disk.

    Tearing down an interpreter that imported torch or TVM costs 0.25-0.55 s (module and library
    destructors), paid by every worker and isolated call and, in a reference job, twice in a row. Python's
    and C's stdio buffers are flushed first, so nothing written to the log is lost.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)
    os._exit(code)


class EventPipe:
    """A child's stdout read as one JSON event per line, against deadlines: a child that hangs is noticed at
    the deadline, one that dies is seen as {'event': 'exit', 'returncode': ...}. Lines that are not JSON (a
    library printing to stdout) are skipped."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.sel = selectors.DefaultSelector()
        self.sel.register(proc.stdout, selectors.EVENT_READ)
        self.buf = b""

    def next_event(self, timeout_s: float) -> dict | None:
        """The next event, or None when none came within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0 or not self.sel.select(left):
                    return None
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    return {"event": "exit", "returncode": self.proc.wait()}
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(line)

    def send(self, message: dict) -> bool:
        """One JSON line to the child's stdin; False when the child is gone."""
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError):
            return False

    def kill(self) -> None:
        kill_group(self.proc)
        self.sel.close()
        self.proc.stdout.close()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
