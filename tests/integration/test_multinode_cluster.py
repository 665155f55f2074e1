"""A study spread over a real two-node SLURM cluster, and one node dying under it.

Each node is a slurmd in its own network namespace with its own hostname and address (tools/slurm,
DELTAMUT_SLURM_NODES=2); the site's partitions differ from the profile's defaults: `batch` (default) and
`a100` on both nodes, `arm64` on node2 only. The study's devices say where they run. From SLURM's own records
the test proves that jobs ran on both nodes and on the partitions their devices ask for, with a GPU for the
GPU device; then it kills node1 (its slurmd and everything running in its namespace) while node1 runs a job,
and the study still completes on node2 with every result present, nothing that was done recomputed. The
dataset is cut into two shards (`dataset.shard_size`), so each variant's inference is two jobs that may land
on different nodes, and the infer jobs of a device are batched four to a SLURM job (the profile's grouping).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.slurm_cluster import job_name, placed_like, records_in, run, site_profile, started_cluster

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NODES = ("node1", "node2")
PARTITIONS = "batch a100 arm64=node2"
MUTANTS = {"ma": 2.0**-8, "mb": 2.0**-6, "mc": 2.0**-4}
SHARD_SIZE = 2  # three photos: shards of 2 and 1


@pytest.fixture(scope="module")
def cluster():
    daemons = ("slurmctld", *(f"slurmd-{n}" for n in NODES))
    with started_cluster(daemons, nodes=str(len(NODES)), partitions=PARTITIONS) as pids:
        yield pids


def _study(tmp: Path, onnx: Path, photos: Path, labels: Path) -> Path:
    config = {
        "models": {"tiny": {"source": "onnx", "path": str(onnx), "input_size": 16, "mutants": sorted(MUTANTS)}},
        "dataset": {"images": str(photos), "labels": str(labels), "limit": 3, "shard_size": SHARD_SIZE},
        "frameworks": ["onnxruntime"],
        "optimisations": {"default": {"passes": ["DecomposeOpsForInference"]}},
        "mutations": {m: {"operator": "store_subtract", "delta": d} for m, d in MUTANTS.items()},
        "targets": {"x86_64": {"kind": "llvm"}},
        "devices": {"host_cpu": {"target": "x86_64"},
                    "accel": {"target": "x86_64", "partition": "a100", "gpus": 1},
                    "edge": {"target": "x86_64", "partition": "arm64"}},
        "runner": {"warmup": 0, "repeats": 1},
    }
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _kill_node1_when_busy(workdir: Path, done: dict, stop: threading.Event) -> None:
    """Once inference has begun and node1 runs a job, kill node1 as a power cut would: its slurmd and every
    process in its namespace. Records what was done by then: every result file older than the dying job."""
    while not stop.is_set():
        jobs = records_in(workdir)
        running = [j for j in jobs if j["JobState"] == "RUNNING" and j.get("BatchHost") == "node1"]
        if running and any(workdir.glob("results/tiny/tvm/**/outputs*.npz")):
            pids = run(["ip", "netns", "pids", "dm-node1"]).stdout.split()
            run(["kill", "-KILL", *pids])
            done["at"] = time.monotonic()
            job = running[0]
            started = datetime.fromisoformat(job["StartTime"]).timestamp()
            done["killed_job"], done["killed_rule"] = job["JobId"], job_name(job)
            done["files"] = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*")
                             if p.is_file() and p.stat().st_mtime < started - 1
                             and not {"logs", "benchmarks"} & set(p.relative_to(workdir).parts)}
            done["finished_on_node1"] = [job_name(j) for j in jobs
                                         if j["JobState"] == "COMPLETED" and j.get("BatchHost") == "node1"]
            return
        time.sleep(0.5)


def test_a_study_spreads_over_two_nodes_and_survives_losing_one(cluster, small_onnx, labelled_photos, tmp_path):
    photos, labels = labelled_photos
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    cache.mkdir()
    config, profile = _study(tmp_path, small_onnx, photos, labels), site_profile(tmp_path, "batch", max_mem_mb=2000)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work), "--profile",
           str(profile), "--configfile", str(config),
           # each node has 2 CPUs: a timed job takes both, so a group job runs its infer jobs one at a time
           "--cores", "2", "--set-threads", "infer=2", "reference=2",
           "--slurm-init-seconds-before-status-checks", "3"]
    done: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=_kill_node1_when_busy, args=(work, done, stop), daemon=True)
    t0 = time.monotonic()
    killer.start()
    try:
        proc = run(cmd, timeout=1500, env={**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}, cwd=work)
    finally:
        stop.set()
        killer.join(timeout=30)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    assert "at" in done, "node1 never ran a second job while the study ran"
    jobs = records_in(work)
    print(f"{len(jobs)} SLURM jobs in {time.monotonic() - t0:.0f} s; node1 killed {done['at'] - t0:.0f} s in, "
          f"during job {done['killed_job']} ({done['killed_rule']}), after {done['finished_on_node1']} on node1; "
          f"{len(done['files'])} result files done by then")

    # Every result is there: the study completed without node1.
    outputs = {p: p.stat().st_mtime_ns for p in work.glob("results/**/outputs*.npz")}
    assert set(outputs) == {work / f"results/tiny/tvm/default/{m}/infer/{d}/outputs.shard{k}.npz"
                            for m in ("original", *MUTANTS) for d in ("host_cpu", "accel", "edge") for k in (0, 1)}
    per_image = pd.read_parquet(work / "results/tiny/compare/per_image.parquet")
    assert (per_image.groupby(["kind", "a", "b"]).size() == 3).all()  # compare read both shards of each side
    assert (work / "results/tiny/compare/summary.md").is_file() and (work / "results/summary.md").is_file()
    # Nothing that was done when node1 died was computed again.
    assert len(done["files"]) >= 5 and all(p.stat().st_mtime_ns == stamp for p, stamp in done["files"].items())
    # The job that died with node1 failed with it and ran again elsewhere.
    killed = next(j for j in jobs if j["JobId"] == done["killed_job"])
    assert killed["JobState"] == "NODE_FAIL", killed
    assert {j["BatchHost"] for j in jobs if j["JobState"] == "COMPLETED"} == set(NODES)

    # Routing from the study's entries, as SLURM recorded it.
    for job in jobs:
        if job["JobState"] != "COMPLETED":
            continue
        name = placed_like(job, ("host_cpu", "accel", "edge"))  # a timing job runs where its device's infers do
        if name == "infer-accel":
            assert job["Partition"] == "a100" and job["TresPerJob"] == "gres:gpu:1", job
            assert job["JOB_GRES"].startswith("gpu:fake:1"), job
        elif name == "infer-edge":
            assert job["Partition"] == "arm64" and job["BatchHost"] == "node2", job
        else:
            assert job["Partition"] == "batch" and "gpu" not in job.get("TresPerJob", ""), job
    # Eight infer jobs per device (4 variants x 2 shards), batched four to a SLURM job: two per device.
    infer_jobs = [job_name(j) for j in jobs if job_name(j).startswith("infer-") and j["JobState"] == "COMPLETED"]
    assert sorted(infer_jobs) == ["infer-accel"] * 2 + ["infer-edge"] * 2 + ["infer-host_cpu"] * 2, infer_jobs
