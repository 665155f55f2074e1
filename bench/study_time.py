"""Wall time of the default study from an empty directory, and its per-job overhead (issue #7.2).

Runs `snakemake --profile profiles/local` on config/config.yaml in a fresh directory (so photos, exports and
every build are made from scratch; nothing comes from a cache), writes one row: jobs, wall seconds, and the
load average before and after, then analyses the finished run with pipeline_overhead.py. Takes 30 minutes
or more on 2 cores. Usage:

    .venv/bin/python bench/study_time.py --out study_time.csv
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", type=Path, default=REPO / "config" / "config.yaml")
    ap.add_argument("--workdir", type=Path, help="run here (default: a new temporary directory)")
    ap.add_argument("--out", type=Path, default=Path("study_time.csv"))
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="deltamut-study-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile",
                           str(args.configfile), "--profile", str(REPO / "profiles" / "local"), "-d", str(work)],
                          capture_output=True, text=True)
    wall = time.monotonic() - t0
    log = done.stdout + done.stderr
    steps = re.findall(r"(\d+) of (\d+) steps", log)
    row = {"config": str(args.configfile), "workdir": str(work), "returncode": done.returncode,
           "jobs": int(steps[-1][1]) if steps else 0, "jobs_done": int(steps[-1][0]) if steps else 0,
           "wall_s": round(wall, 1), "cores": os.cpu_count(), "load_before": round(load_before, 2),
           "load_after": round(os.getloadavg()[0], 2)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(args.out, index=False)
    print(", ".join(f"{k}={v}" for k, v in row.items()))
    overhead = args.out.with_name(args.out.stem + "_overhead.csv")
    subprocess.run([sys.executable, str(REPO / "bench" / "pipeline_overhead.py"), "--from-dir", str(work),
                    "--out", str(overhead)], check=False)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
