"""A small study through the cluster profile on the real single-node SLURM cluster, submitted as a batch job.

The cluster is set up as another site would be: partitions `batch` (the default), `a100` and `arm64`, and a
copy of profiles/gpu-cluster whose only edit is that default partition. The study names its devices against
type (`host_cpu`, `accel`) and says where each runs in its entry. The study itself is submitted with
profiles/gpu-cluster/head.sbatch, so Snakemake's head process is a SLURM job too. From SLURM's own job
records (`scontrol -d show job`; finished jobs stay for MinJobAge=600 s) the test proves that each device's
infer jobs ran on the partition its entry asks for, in one batched SLURM job per device, that the GPU device's
job held a GPU, and that everything else ran on the site's default partition; then that editing one mutation
resubmits only that mutation's jobs and the tables that read them.

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

from tests.slurm_cluster import job_name, placed_like, record, run, site_profile, started_cluster

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SITE_PARTITIONS = ("batch", "a100", "arm64")  # the first is the site's default
UPSTREAM = {"photos", "dataset", "input_mutant", "export", "compile", "reference"}
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


@pytest.fixture(scope="module")
def cluster():
    """The cluster for this module, with the site's partitions."""
    with started_cluster(("slurmctld", "slurmd"), partitions=" ".join(SITE_PARTITIONS)) as pids:
        yield pids


def _job_ids() -> set[int]:
    out = run(["squeue", "-h", "-t", "all", "-o", "%i"], timeout=60)
    assert out.returncode == 0, out.stderr
    return {int(x) for x in out.stdout.split()}


def _jobs_since(before: set[int], workdir: Path) -> list[dict[str, str]]:
    """This run's jobs: new since `before` and started in our working directory (others may share the cluster)."""
    jobs = [record(j) for j in sorted(_job_ids() - before)]
    return [j for j in jobs if Path(j["WorkDir"]).resolve() == workdir.resolve()]

DEVICES = ("host_cpu", "accel")


def _study(tmp: Path, onnx: Path, photos: Path, labels: Path, delta: float) -> Path:
    config = {
        "models": {"tiny": {"source": "onnx", "path": str(onnx), "input_size": 16, "mutants": ["mb"]}},
        "dataset": {"images": str(photos), "labels": str(labels), "limit": 3},
        "frameworks": ["onnxruntime"],
        "optimisations": {"default": {"passes": ["DecomposeOpsForInference"]}},
        "mutations": {"mb": {"operator": "store_subtract", "delta": delta}},
        "targets": {"x86_64": {"kind": "llvm"}},
        # Both run x86 code (no real GPU here); the entries, not the names, say where they run.
        "devices": {DEVICES[0]: {"target": "x86_64"},
                    DEVICES[1]: {"target": "x86_64", "partition": "a100", "gpus": 1, "runtime": 20}},
        "runner": {"warmup": 0, "repeats": 1},
    }
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# The head job holds one of the node's two CPUs, so every job and group job gets the other one.
ONE_CPU = ["--cores", "1", "--set-threads", "infer=1", "reference=1",
           # a test cannot wait the profile's 20 s before the first status check of every batch
           "--slurm-init-seconds-before-status-checks", "3"]


def _submit_head(tmp: Path, workdir: Path, configfile: Path, profile: Path, cache: Path) -> dict[str, str]:
    """`sbatch profiles/gpu-cluster/head.sbatch STUDY` as a user runs it, with this test's profile and
    directories; waits for the head job and returns SLURM's record of it."""
    log = tmp / "head.log"
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache), "DELTAMUT_PYTHON": sys.executable,
           "DELTAMUT_PROFILE": str(profile)}
    proc = run(["sbatch", "--parsable", "-o", str(log), "--chdir", str(REPO),
                 str(REPO / "profiles" / "gpu-cluster" / "head.sbatch"), str(configfile), "-d", str(workdir),
                 *ONE_CPU], timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    job = int(proc.stdout.strip().split(";")[0])
    deadline = time.monotonic() + 1500
    while (state := record(job)["JobState"]) not in FINISHED:
        assert time.monotonic() < deadline, f"head job {job} still {state}"
        time.sleep(2)
    text = log.read_text()
    assert state == "COMPLETED", text[-6000:]
    assert f"deltamut head job {job}" in text and "steps (100%) done" in text, text[-3000:]
    return record(job)


def _snakemake(workdir: Path, configfile: Path, profile: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--profile", str(profile), "--configfile", str(configfile), *ONE_CPU]
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    return run(cmd, timeout=1500, env=env, cwd=workdir)


def test_study_routes_batches_and_reruns_only_the_edited_mutation(cluster, small_onnx, labelled_photos,
                                                                  tmp_path: Path) -> None:
    photos, labels = labelled_photos
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    cache.mkdir()
    profile = site_profile(tmp_path, SITE_PARTITIONS[0])
    config = _study(tmp_path, small_onnx, photos, labels, delta=2.0**-10)

    t0 = time.monotonic()
    before = _job_ids()
    head = _submit_head(tmp_path, work, config, profile, cache)
    jobs = [j for j in _jobs_since(before, work) if j["JobId"] != head["JobId"]]
    print(f"run 1 (head job {head['JobId']}): {len(jobs)} SLURM jobs in {time.monotonic() - t0:.0f} s")

    names = [job_name(j) for j in jobs]
    for job in jobs:
        assert job["JobState"] == "COMPLETED", job
        if placed_like(job, DEVICES) == "infer-accel":  # its infer jobs, and the timing of its variants
            # the device entry's partition, sbatch --gpus=1 (TresPerJob) and one fake GPU really allocated
            assert job["Partition"] == "a100" and job["TresPerJob"] == "gres:gpu:1", job
            assert job["JOB_GRES"].startswith("gpu:fake:1"), job
        else:  # host_cpu names no partition, and the other rules run on the site's default
            assert job["Partition"] == SITE_PARTITIONS[0], job
            assert job.get("JOB_GRES", "(null)") == "(null)" and "gpu" not in job.get("TresPerJob", ""), job
    # Two infer jobs per device (original, mb), batched into one SLURM job per device; the deploys too.
    assert sorted(n for n in names if n.startswith(("infer", "deploy", "mutate"))) == [
        "deploy", "infer-accel", "infer-host_cpu", "mutate"], names
    assert {"export", "compile", "timing", "compare", "summary"} <= set(names), names
    outputs = {(m, d): work / f"results/tiny/tvm/default/{m}/infer/{d}/outputs.npz"
               for m in ("original", "mb") for d in ("host_cpu", "accel")}
    assert all(p.is_file() for p in outputs.values())
    # export and compile went through the between-workflow cache
    assert (work / "results/tiny/tvm/default/graph.json").resolve().parent == cache.resolve()

    # Edit only mutation mb's parameter: its jobs and the tables that read them, nothing else.
    stamps = {k: p.stat().st_mtime_ns for k, p in outputs.items()}
    config = _study(tmp_path, small_onnx, photos, labels, delta=2.0**-6)
    t1 = time.monotonic()
    before = _job_ids()
    second = _snakemake(work, config, profile, cache)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-6000:]
    rerun = _jobs_since(before, work)
    print(f"run 2: {len(rerun)} SLURM jobs in {time.monotonic() - t1:.0f} s")

    submitted = [job_name(j) for j in rerun]
    assert not set(submitted) & UPSTREAM, submitted
    assert sorted(r for r in submitted if r.startswith(("infer", "deploy", "mutate"))) == [
        "deploy", "infer-accel", "infer-host_cpu", "mutate"], submitted
    assert {"compare", "summary"} <= set(submitted), submitted
    after = {k: p.stat().st_mtime_ns for k, p in outputs.items()}
    assert {k for k in stamps if stamps[k] != after[k]} == {("mb", "host_cpu"), ("mb", "accel")}
    for job in rerun:
        assert job["Partition"] == ("a100" if placed_like(job, DEVICES) == "infer-accel" else SITE_PARTITIONS[0]), job
    print(f"whole test (without cluster start): {time.monotonic() - t0:.0f} s")
