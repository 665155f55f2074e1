"""Wall time of planning a study with `snakemake -n` (issue #7.3: a paper-scale study in under 20 s).

Each run plans in a fresh empty directory, so every job is planned (nothing is up to date). Besides the
total, the script times the fixed startup that every `snakemake` invocation pays before it reads the
Snakefile (importing Snakemake and its executor plugins), so the table separates what the size of the DAG
costs from what does not depend on the study at all. Usage:

    .venv/bin/python bench/plan_time.py --configfile bench/paper_scale.yaml --runs 3 --out plan_time.csv

With `--images N --shard-size S`, the study runs on a folder of N placeholder files (ImageNet's validation
names, empty: planning lists them but decodes none) cut into shards of S (`dataset.shard_size`), so the
table shows what sharding a 50,000-image campaign costs the planner.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# Importing the Snakemake API loads every installed executor plugin; the SLURM plugin runs
# `scontrol show config` at import time (up to its 10 s timeout when no controller answers).
STARTUP = [sys.executable, "-c", "import snakemake.api"]


def job_count(stdout: str) -> int:
    """The `total` row of the 'Job stats' table that `snakemake -n` prints."""
    m = re.search(r"^total\s+(\d+)\s*$", stdout, re.M)
    if m is None:
        raise ValueError("no 'total' row in the dry run's job stats")
    return int(m.group(1))


def _timed(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def plan_once(configfile: Path, snakefile: Path) -> tuple[float, int]:
    """Seconds and job count of one dry run in a fresh directory."""
    with tempfile.TemporaryDirectory(prefix="deltamut-plan-") as tmp:
        cmd = [*SNAKEMAKE, "-s", str(snakefile), "--configfile", str(configfile), "--directory", tmp,
               "-n", "--quiet", "rules"]
        secs, proc = _timed(cmd, Path(tmp))
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return secs, job_count(proc.stdout + proc.stderr)


@contextlib.contextmanager
def sharded_config(configfile: Path, images: int, shard_size: int):
    """`configfile` with its dataset replaced by `images` placeholder files in shards of `shard_size`."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="deltamut-plan-images-") as tmp:
        folder = Path(tmp) / "val"
        folder.mkdir()
        for k in range(1, images + 1):
            (folder / f"ILSVRC2012_val_{k:08d}.JPEG").touch()
        config = yaml.safe_load(configfile.read_text())
        config["dataset"] = {"images": str(folder), "labels": None, "shard_size": shard_size}
        derived = Path(tmp) / "study.yaml"
        derived.write_text(yaml.safe_dump(config))
        yield derived


def slurm_probe_s() -> float | None:
    """What the SLURM plugin's `scontrol show config` costs here (None without SLURM's client tools)."""
    if shutil.which("scontrol") is None or shutil.which("sinfo") is None:
        return None
    t0 = time.perf_counter()
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=10)
    return time.perf_counter() - t0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", type=Path, default=REPO / "bench" / "paper_scale.yaml")
    ap.add_argument("--snakefile", type=Path, default=REPO / "Snakefile")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--target-s", type=float, default=20.0, help="the issue's limit, for the verdict line")
    ap.add_argument("--images", type=int, help="plan on this many placeholder images (with --shard-size)")
    ap.add_argument("--shard-size", type=int, help="dataset.shard_size for --images")
    ap.add_argument("--out", type=Path, default=Path("plan_time.csv"))
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    with contextlib.ExitStack() as stack:
        configfile = args.configfile.resolve()
        if args.images:
            configfile = stack.enter_context(sharded_config(configfile, args.images, args.shard_size))
        plans = [plan_once(configfile, args.snakefile.resolve()) for _ in range(args.runs)]
    startups = [_timed(STARTUP, REPO)[0] for _ in range(args.runs)]
    probe = slurm_probe_s()
    jobs = plans[0][1]
    total = statistics.median(s for s, _ in plans)
    startup = statistics.median(startups)
    row = {"configfile": str(args.configfile), "images": args.images or "", "shard_size": args.shard_size or "",
           "runs": args.runs, "jobs": jobs, "median_s": round(total, 2),
           "min_s": round(min(s for s, _ in plans), 2), "startup_s": round(startup, 2),
           "dag_s": round(total - startup, 2), "ms_per_job": round(1e3 * (total - startup) / jobs, 2),
           "slurm_probe_s": "" if probe is None else round(probe, 2), "load_avg_1m": round(os.getloadavg()[0], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(args.out, index=False)
    for key, value in row.items():
        print(f"{key:15s} {value}")
    verdict = "within" if total < args.target_s else "OVER"
    print(f"planning {jobs} jobs: {total:.1f} s median of {args.runs}, {verdict} the {args.target_s:g} s target")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
