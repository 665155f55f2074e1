"""Isolated children die with their parent: a SIGKILLed workflow leaves no orphan running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

PARENT = """
import sys, time
from deltamut.procutil import spawn
child = spawn([sys.executable, "-c", "import time; time.sleep(300)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead, only not yet reaped
        return f.read().split(")")[1].split()[0] != "Z"


def test_child_is_killed_with_its_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_exit_now_keeps_everything_written_to_a_file(tmp_path):
    """Python's and C's buffered output to a file (a job log) survives the skipped teardown, and so does
    the exit code."""
    child = (
        "import ctypes, sys\n"
        "from deltamut.procutil import exit_now\n"
        "print('from python')\n"
        "sys.stderr.write('from stderr')\n"
        "ctypes.CDLL(None).printf(b'from C\\n')\n"
        "exit_now(7)\n"
    )
    log = tmp_path / "log"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as under Snakemake
    with open(log, "wb") as f:
        rc = subprocess.run([sys.executable, "-c", child], stdout=f, stderr=f, env=env).returncode
    text = log.read_text()
    assert rc == 7
    assert "from python" in text and "from stderr" in text and "from C" in text
