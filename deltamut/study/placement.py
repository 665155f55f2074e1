"""Where a device's jobs run on a cluster, read from the device's study entry, never from its name.

A site names its partitions and GPUs as it likes (`batch`, `a100`, `arm64`), and a device called `a100` or
`jetson` is as likely to have a CUDA target as one called `gpu`; so the entry says it (`partition`, `gpus`,
`env`, `runtime`, `mem_mb`) and what it leaves out follows from its target: a CUDA target run on the node
itself holds one GPU in the CUDA environment, an aarch64 one runs in the ARM environment, and a board reached
over RPC needs neither (its job only connects out). The rules read this through `resources:` and `conda:`;
the profile keeps only the site's defaults (account, default partition).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deltamut.defaults import defaults

KEYS = ("partition", "gpus", "env", "runtime", "mem_mb")  # a device entry's placement, not its runtime settings
ENVS = ("cpu", "cuda", "arm")  # envs/<env>.yaml


@dataclass(frozen=True)
class Placement:
    """`partition` None: the site's default partition. `runtime` in minutes."""

    partition: str | None
    gpus: int
    gpu_model: str | None
    env: str
    runtime: int
    mem_mb: int


def _remote(device: dict[str, Any]) -> bool:
    return bool(device.get("rpc") or device.get("tracker"))


def is_local(device: dict[str, Any]) -> bool:
    """The device's code runs in the job's own process (not on a board over RPC)."""
    return not _remote(device)


def is_host_cpu(device: dict[str, Any], target: dict[str, Any]) -> bool:
    """The job's own CPU runs the device's code: what may be timed beside the frameworks, or traced kernel by
    kernel in one process."""
    return is_local(device) and target.get("kind", "llvm") == "llvm"


def default_env(device: dict[str, Any], target: dict[str, Any]) -> str:
    if _remote(device):
        return "cpu"
    if target.get("kind") == "cuda":
        return "cuda"
    return "arm" if str(target.get("mtriple", "")).startswith(("aarch64", "arm64")) else "cpu"


def placement(device: dict[str, Any], target: dict[str, Any]) -> Placement:
    """The placement of one device's infer jobs, from its entry and its target's."""
    fallback = defaults("devices.*")
    gpus = device.get("gpus")
    if gpus is None:
        gpus = 1 if target.get("kind") == "cuda" and not _remote(device) else 0
    count, model = (gpus.get("count", 1), gpus.get("model")) if isinstance(gpus, dict) else (int(gpus), None)
    return Placement(partition=device.get("partition"), gpus=int(count), gpu_model=model,
                     env=device.get("env") or default_env(device, target),
                     runtime=int(device.get("runtime", fallback["runtime"])),
                     mem_mb=int(device.get("mem_mb", fallback["mem_mb"])))


def runtime_settings(device: dict[str, Any]) -> dict[str, Any]:
    """The entry without its placement: what an infer job needs to reach and run the device, and all that
    its params carry (so moving a device to another partition reruns nothing)."""
    return {k: v for k, v in device.items() if k not in KEYS}
