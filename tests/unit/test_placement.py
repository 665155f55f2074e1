"""Cluster placement comes from the study: a device's entry and its target, never its name; env files from the pins."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deltamut import envfiles
from deltamut.defaults import schema
from deltamut.study.placement import ENVS, KEYS, Placement, placement, runtime_settings

REPO = Path(__file__).resolve().parents[2]
CUDA = {"kind": "cuda", "arch": "sm_90"}
X86 = {"kind": "llvm"}
AARCH64 = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "cross_compiler": "aarch64-linux-gnu-g++"}


@pytest.mark.parametrize(("device", "target", "expected"), [
    ({"target": "t"}, X86, Placement(None, 0, None, "cpu", 60, 4000)),
    ({"target": "t"}, CUDA, Placement(None, 1, None, "cuda", 60, 4000)),
    ({"target": "t"}, AARCH64, Placement(None, 0, None, "arm", 60, 4000)),
    ({"target": "t", "rpc": {"host": "board", "port": 9090}}, AARCH64, Placement(None, 0, None, "cpu", 60, 4000)),
    ({"target": "t", "tracker": {"host": "h", "port": 9190, "key": "jetson"}}, CUDA,
     Placement(None, 0, None, "cpu", 60, 4000)),
    ({"target": "t", "partition": "a100", "gpus": {"count": 2, "model": "a100"}, "runtime": 15, "mem_mb": 9000},
     CUDA, Placement("a100", 2, "a100", "cuda", 15, 9000)),
    ({"target": "t", "partition": "batch", "gpus": 0, "env": "cpu"}, CUDA,
     Placement("batch", 0, None, "cpu", 60, 4000)),
], ids=["x86", "cuda_on_the_node", "aarch64_on_the_node", "aarch64_board_over_rpc", "cuda_board_via_tracker",
        "all_given", "cuda_target_without_gpu"])
def test_placement_follows_the_entry_and_the_target(device, target, expected):
    assert placement(device, target) == expected


def test_an_infer_job_params_carry_no_placement():
    device = {"target": "t", "rpc": {"host": "b", "port": 1}, "partition": "p", "gpus": 1, "env": "cpu",
              "runtime": 5, "mem_mb": 100}
    assert runtime_settings(device) == {"target": "t", "rpc": {"host": "b", "port": 1}}


def test_the_schema_describes_exactly_the_placement_keys_and_envs():
    entry = schema()["properties"]["devices"]["additionalProperties"]["properties"]
    assert set(KEYS) <= set(entry) and tuple(entry["env"]["enum"]) == ENVS
    assert {e.name for e in envfiles.ENVS} == set(ENVS)


def test_env_files_are_generated_from_the_pinned_requirements():
    """envs/*.yaml are what `python -m deltamut.envfiles` writes from requirements.txt: they cannot drift."""
    assert envfiles.main(["--check"]) == 0
    requirements = {line.split("==")[0]: line for line in (REPO / "requirements.txt").read_text().splitlines()
                    if "==" in line and not line.startswith("#")}
    for env in ENVS:
        pins = yaml.safe_load((REPO / "envs" / f"{env}.yaml").read_text())["dependencies"][-1]["pip"]
        pinned = {p.split("==")[0]: p for p in pins if "==" in p}
        for name, line in requirements.items():
            assert (name in envfiles.DEV_ONLY) != (pinned.get(name) == line), (env, name)


def test_the_dry_run_routes_each_device_by_its_entry(tmp_path):
    """Through the real rules: devices named against type (`gpu` on a CPU, `edge` with a CUDA target) get the
    partition and GPUs their entries and targets say, in the grouped jobs the cluster profile submits."""
    config = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    config["targets"] = {"x86_64": {"kind": "llvm"}, "sm90": CUDA}
    config["devices"] = {"gpu": {"target": "x86_64"},
                         "edge": {"target": "sm90", "partition": "a100", "gpus": {"count": 1, "model": "h100"},
                                  "runtime": 20}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                           "--configfile", str(tmp_path / "study.yaml"), "-n", "--cores", "2",
                           "--group-components", "infer-{device}=8", "--default-resources", "slurm_partition=site"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    blocks = proc.stdout.split("rule infer:")[1:]
    assert len(blocks) == 4  # two optimisations x two devices
    for block in blocks:
        wildcards = re.search(r"wildcards: (.*)", block).group(1)
        res = dict(kv.split("=", 1) for kv in re.search(r"resources: (.*)", block).group(1).split(", "))
        if "device=edge" in wildcards:
            assert (res["slurm_partition"], res["gpu"], res["gpu_model"], res["runtime"]) == ("a100", "1", "h100", "20")
        else:
            assert "slurm_partition" not in res and res["gpu"] == "0" and res["runtime"] == "60", res
    groups = re.findall(r"Group job (\S+) ", proc.stdout)
    assert set(groups) >= {"infer-gpu", "infer-edge"}
