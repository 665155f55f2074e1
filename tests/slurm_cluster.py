"""What the SLURM tests share: commands with a timeout, daemon liveness by PID, SLURM's job records, and a
site's copy of the cluster profile (tools/slurm's clusters; docs/clusters.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SLURM = REPO / "tools" / "slurm"
STATE = Path(os.environ.get("DELTAMUT_SLURM_STATE", "/run/slurm"))


def run(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def alive(pid: int) -> bool:
    """The process runs and is not a zombie (a daemon stopped by PID must really be gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def record(job: int) -> dict[str, str]:
    """SLURM's record of one job as key=value pairs (`-d` adds the GRES actually allocated)."""
    out = run(["scontrol", "-d", "-o", "show", "job", str(job)])
    assert out.returncode == 0, out.stderr
    return dict(tok.split("=", 1) for tok in out.stdout.split() if "=" in tok)


def records_in(workdir: Path) -> list[dict[str, str]]:
    """SLURM's record of every job started in `workdir` (others may share the cluster)."""
    out = run(["scontrol", "-d", "-o", "show", "job"])
    assert out.returncode == 0, out.stderr
    jobs = [dict(tok.split("=", 1) for tok in line.split() if "=" in tok) for line in out.stdout.splitlines()]
    return [j for j in jobs if Path(j.get("WorkDir", "/")).resolve() == workdir.resolve()]


GROUPED_RULES = ("mutate", "deploy", "infer")  # the rules that declare groups (rules/*.smk)


def job_name(job: dict[str, str]) -> str:
    """The rule, or the group, a SLURM job ran. The plugin's comment is `rule_<rule>[_wildcards_<values>]` for
    one job and `rule_<group id>_<its rules>` for a group job (`rule_infer-host_cpu_infer`)."""
    body = job["Comment"].removeprefix("rule_")
    if "_wildcards_" in body:
        return body.partition("_wildcards_")[0]
    group, _, rules = body.rpartition("_")
    return group if group and rules in GROUPED_RULES else body


def placed_like(job: dict[str, str], devices: tuple[str, ...]) -> str:
    """The job whose placement `job` must share: a timing job times its group's variants on the group's device
    (`rule_timing_wildcards_<model>_<group>`, the group `main-<dev>` or `mutants-<opt>-<dev>-<k>`), so it runs
    where that device's infer jobs run; any other job is placed as itself."""
    name = job_name(job)
    if name != "timing":
        return name
    group = job["Comment"].partition("_wildcards_")[2] + "-"
    return "infer-" + next(d for d in devices if f"-{d}-" in group)


def site_profile(tmp: Path, default_partition: str, max_mem_mb: int | None = None) -> Path:
    """profiles/gpu-cluster copied and adapted the way docs/clusters.md tells a site to: its default partition,
    and for small nodes at most `max_mem_mb` per job (a group job asks for its parallel jobs' sum)."""
    site = tmp / "profiles" / "site"
    shutil.copytree(REPO / "profiles" / "gpu-cluster", site)
    config = yaml.safe_load((site / "config.yaml").read_text())
    config["default-resources"]["slurm_partition"] = default_partition
    if max_mem_mb is not None:
        for resources in config["set-resources"].values():
            resources["mem_mb"] = min(resources.get("mem_mb", max_mem_mb), max_mem_mb)
    (site / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return site


@contextmanager
def started_cluster(daemons: tuple[str, ...], **settings: str) -> Iterator[dict[str, int]]:
    """A cluster of tools/slurm/start-cluster.sh with `DELTAMUT_SLURM_<KEY>` settings (nodes, partitions),
    yielding the PIDs of `daemons` (their PID file names); stopped by PID whatever happens, and proven gone."""
    env = {**os.environ, **{f"DELTAMUT_SLURM_{k.upper()}": v for k, v in settings.items()}}
    start = run(["bash", str(SLURM / "start-cluster.sh")], timeout=900, env=env)
    assert start.returncode == 0, start.stdout + start.stderr
    pids = {d: int((STATE / f"{d}.pid").read_text()) for d in daemons}
    try:
        yield pids
    finally:
        stop = run(["bash", str(SLURM / "stop-cluster.sh")], timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not any(alive(p) for p in pids.values()), pids
    assert not [ln for ln in run(["ip", "netns", "list"]).stdout.splitlines() if ln.startswith("dm-")]
