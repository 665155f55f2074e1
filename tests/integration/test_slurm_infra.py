"""The single-node SLURM cluster of tools/slurm is real: jobs route by partition and get fake GPUs.

Needs root and apt (as CI has): the scripts install Debian's slurm and munge when missing.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SLURM = REPO / "tools" / "slurm"
STATE = Path("/run/slurm")  # the scripts' default (DELTAMUT_SLURM_STATE unset)


def _run(*cmd: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)


def _sbatch(out: Path, *args: str) -> int:
    proc = _run("sbatch", "--parsable", "-o", str(out), *args, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().split(";")[0])


def _wait(job: int, timeout: float = 120) -> str:
    """Final state from squeue (no accounting here; MinJobAge keeps finished jobs listed)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = _run("squeue", "-h", "-j", str(job), "-t", "all", "-o", "%T", timeout=30).stdout.strip()
        if state in {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}:
            return state
        time.sleep(0.5)
    raise AssertionError(f"job {job} not finished after {timeout} s (state {state!r})")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_cluster_routes_jobs_and_stops(tmp_path: Path) -> None:
    t0 = time.monotonic()
    start = _run("bash", str(SLURM / "start-cluster.sh"))
    assert start.returncode == 0, start.stdout + start.stderr
    print(start.stdout, f"start-cluster.sh: {time.monotonic() - t0:.1f} s")
    pids = {d: int((STATE / f"{d}.pid").read_text()) for d in ("slurmctld", "slurmd")}
    try:
        again = _run("bash", str(SLURM / "start-cluster.sh"), timeout=60)
        assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
        assert {d: int((STATE / f"{d}.pid").read_text()) for d in pids} == pids

        parts = _run("sinfo", "-h", "-o", "%P %a %G").stdout.split("\n")
        assert {line.split()[0] for line in parts if line} == {"cpu*", "gpu", "arm"}
        assert all("gpu:fake:2" in line for line in parts if line)

        show = "echo CVD=${CUDA_VISIBLE_DEVICES-unset} PART=$SLURM_JOB_PARTITION NODE=$SLURMD_NODENAME"
        gpu = _sbatch(tmp_path / "gpu.out", "-p", "gpu", "--gpus=1", "--wrap", show)
        two = _sbatch(tmp_path / "gpu2.out", "-p", "gpu", "--gres=gpu:2", "--wrap", show)
        arm = _sbatch(tmp_path / "arm.out", "-p", "arm", "--wrap", show)
        dflt = _sbatch(tmp_path / "default.out", "--wrap", show)
        for job in (gpu, two, arm, dflt):
            assert _wait(job) == "COMPLETED"

        out = {p.stem: p.read_text().strip() for p in tmp_path.glob("*.out")}
        assert out["gpu"].startswith("CVD=0 PART=gpu ") or out["gpu"].startswith("CVD=1 PART=gpu "), out
        assert out["gpu2"].startswith("CVD=0,1 PART=gpu "), out
        assert out["arm"].startswith("CVD=unset PART=arm "), out
        assert out["default"].startswith("CVD=unset PART=cpu "), out

        # Three GPUs do not exist on this node: SLURM refuses the job at submission.
        too_many = _run("sbatch", "-p", "gpu", "--gpus=3", "--wrap", "true", timeout=60)
        assert too_many.returncode != 0
    finally:
        stop = _run("bash", str(SLURM / "stop-cluster.sh"), timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not any(_alive(pid) for pid in pids.values()), pids
    assert not (STATE / "slurmctld.pid").exists() and not (STATE / "slurmd.pid").exists()
    assert _run("sinfo", timeout=60).returncode != 0
