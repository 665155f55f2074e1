"""A small study through `snakemake --profile profiles/gpu-cluster` on the real single-node SLURM cluster.

Proves, from SLURM's own job records (`scontrol -d show job`; finished jobs stay for MinJobAge=600 s), that
infer jobs land on the partition their device's name routes to and that gpu jobs were allocated a GPU;
then that editing one mutation resubmits only that mutation's jobs and the tables that read them.

The study is small on purpose (a 16x16 ONNX CNN, one optimisation, the original and one mutant, two
devices): every SLURM job starts its own Snakemake, so job count, not model size, sets the run time.
Needs root and apt, as CI has (tools/slurm/start-cluster.sh installs munge and slurm when missing).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SLURM = REPO / "tools" / "slurm"
STATE = Path(os.environ.get("DELTAMUT_SLURM_STATE", "/run/slurm"))
PER_VARIANT = {"mutate", "deploy", "infer"}
UPSTREAM = {"photos", "dataset", "input_mutant", "export", "compile", "reference"}


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster():
    """The cluster for this module; stopped by PID (stop-cluster.sh) whatever happens."""
    start = _run(["bash", str(SLURM / "start-cluster.sh")], timeout=900)
    assert start.returncode == 0, start.stdout + start.stderr
    pids = {d: int((STATE / f"{d}.pid").read_text()) for d in ("slurmctld", "slurmd")}
    try:
        yield pids
    finally:
        stop = _run(["bash", str(SLURM / "stop-cluster.sh")], timeout=120)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert not any(_alive(p) for p in pids.values()), pids


def _job_ids() -> set[int]:
    out = _run(["squeue", "-h", "-t", "all", "-o", "%i"], timeout=60)
    assert out.returncode == 0, out.stderr
    return {int(x) for x in out.stdout.split()}


def _record(job: int) -> dict[str, str]:
    """SLURM's record of one job as key=value pairs (`-d` adds the GRES actually allocated)."""
    out = _run(["scontrol", "-d", "-o", "show", "job", str(job)], timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(tok.split("=", 1) for tok in out.stdout.split() if "=" in tok)


def _parse_comment(comment: str) -> tuple[str, list[str]]:
    """The plugin's comment is `rule_<rule>[_wildcards_<values joined by _>]`."""
    body = comment.removeprefix("rule_")
    rule, _, wildcards = body.partition("_wildcards_")
    return rule, wildcards.split("_") if wildcards else []


def _jobs_since(before: set[int], workdir: Path) -> list[dict[str, str]]:
    """This run's jobs: new since `before` and started in our working directory (others may share the cluster)."""
    jobs = [_record(j) for j in sorted(_job_ids() - before)]
    return [j for j in jobs if Path(j["WorkDir"]).resolve() == workdir.resolve()]


def _study(tmp: Path, onnx: Path, photos: Path, labels: Path, delta: float) -> Path:
    config = {
        "models": {"tiny": {"source": "onnx", "path": str(onnx), "input_size": 16, "mutants": ["mb"]}},
        "dataset": {"images": str(photos), "labels": str(labels), "limit": 3},
        "frameworks": ["onnxruntime"],
        "optimisations": {"default": {"passes": ["DecomposeOpsForInference"]}},
        "mutations": {"mb": {"operator": "store_subtract", "delta": delta}},
        "targets": {"x86_64": {"kind": "llvm"}},
        # Both run x86 code (no GPU here); the device *name* routes `gpu` to the gpu partition.
        "devices": {"cpu": {"target": "x86_64"}, "gpu": {"target": "x86_64"}},
        "runner": {"warmup": 0, "repeats": 1},
    }
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _snakemake(workdir: Path, configfile: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--profile", str(REPO / "profiles" / "gpu-cluster"), "--configfile", str(configfile),
           # a test cannot wait the profile's 20 s before the first status check of every batch
           "--slurm-init-seconds-before-status-checks", "3",
           # the test cluster's one node has 2 CPUs; the profile asks 4 for timed jobs, as a real site would
           "--set-threads", "infer=2", "reference=2"]
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    return _run(cmd, timeout=1500, env=env, cwd=workdir)


def test_profile_routes_jobs_and_reruns_only_the_edited_mutation(cluster, small_onnx, labelled_photos,
                                                                 tmp_path: Path) -> None:
    photos, labels = labelled_photos
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    cache.mkdir()
    config = _study(tmp_path, small_onnx, photos, labels, delta=2.0**-10)

    t0 = time.monotonic()
    before = _job_ids()
    first = _snakemake(work, config, cache)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-6000:]
    jobs = _jobs_since(before, work)
    print(f"run 1: {len(jobs)} SLURM jobs in {time.monotonic() - t0:.0f} s")

    seen: dict[tuple[str, str], dict[str, str]] = {}
    for job in jobs:
        assert job["JobState"] == "COMPLETED", job
        rule, wc = _parse_comment(job["Comment"])
        if rule == "infer":
            device = wc[-1]  # infer's wildcards: model, opt, mutant, device
            want = "gpu" if device == "gpu" else "cpu"
            assert job["Partition"] == want, (device, job)
            if device == "gpu":
                # sbatch --gpus=1 (TresPerJob) and one fake GPU actually allocated (JOB_GRES)
                assert job["TresPerJob"] == "gres:gpu:1", job
                assert job["JOB_GRES"].startswith("gpu:fake:1"), job
            else:
                assert job.get("JOB_GRES", "(null)") == "(null)" and "gpu" not in job.get("TresPerJob", ""), job
            seen[("infer", "_".join(wc[2:]))] = job
        else:
            # deploy builds on cpu (cross-compiling needs no ARM node, CUDA codegen no GPU), as does the rest
            assert job["Partition"] == "cpu", job
            assert job.get("JOB_GRES", "(null)") == "(null)", job
            seen[(rule, "_".join(wc))] = job
    for mutant in ("original", "mb"):
        for device in ("cpu", "gpu"):
            assert ("infer", f"{mutant}_{device}") in seen, sorted(seen)
        assert ("deploy", f"tiny_default_{mutant}_x86_64") in seen, sorted(seen)
    assert {"export", "compile", "compare", "summary"} <= {r for r, _ in seen}
    outputs = {(m, d): work / f"results/tiny/tvm/default/{m}/infer/{d}/outputs.npz"
               for m in ("original", "mb") for d in ("cpu", "gpu")}
    assert all(p.is_file() for p in outputs.values())
    # export and compile went through the between-workflow cache
    assert (work / "results/tiny/tvm/default/graph.json").resolve().parent == cache.resolve()

    # Edit only mutation mb's parameter: its jobs and the tables that read them, nothing else.
    stamps = {k: p.stat().st_mtime_ns for k, p in outputs.items()}
    config = _study(tmp_path, small_onnx, photos, labels, delta=2.0**-6)
    t1 = time.monotonic()
    before = _job_ids()
    second = _snakemake(work, config, cache)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-6000:]
    rerun = _jobs_since(before, work)
    print(f"run 2: {len(rerun)} SLURM jobs in {time.monotonic() - t1:.0f} s")

    submitted = {(_parse_comment(j["Comment"])[0], "_".join(_parse_comment(j["Comment"])[1])) for j in rerun}
    variant_jobs = {s for s in submitted if s[0] in PER_VARIANT}
    assert variant_jobs == {("mutate", "tiny_default_mb"), ("deploy", "tiny_default_mb_x86_64"),
                            ("infer", "tiny_default_mb_cpu"), ("infer", "tiny_default_mb_gpu")}, submitted
    assert not {r for r, _ in submitted} & UPSTREAM, submitted
    assert {"compare", "summary"} <= {r for r, _ in submitted}, submitted
    for job in rerun:
        rule, wc = _parse_comment(job["Comment"])
        assert job["Partition"] == ("gpu" if rule == "infer" and wc[-1] == "gpu" else "cpu"), job
    after = {k: p.stat().st_mtime_ns for k, p in outputs.items()}
    assert {k for k in stamps if stamps[k] != after[k]} == {("mb", "cpu"), ("mb", "gpu")}
    print(f"whole test (without cluster start): {time.monotonic() - t0:.0f} s")
