"""Planning time of a study with a large sweep: `snakemake -n` once a census has chosen N one-site mutants.

A sweep's mutants are planned after its census has run (a checkpoint), and then every job's input functions
ask the study for them, so planning time is what grows with the number of sites. The script runs the census
for real (exporting, importing and lowering the model once: a minute on 2 cores), then times dry runs in
the same directory, where every one-site mutant is planned (mutate, deploy, infer each) and nothing else
is left to do but them. Usage:

    .venv/bin/python bench/sweep_plan.py --sites 200 --runs 3 --out bench/out/sweep_plan.csv
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from deltamut.defaults import section_default

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]


def study(sites: int) -> dict:
    """EfficientNet-Lite0 under `extended` with one kernel-level sweep: `sites` of its 276 float32 stores."""
    extended = section_default("optimisations")["extended"]
    return {"models": {"efficientnet_lite0": {"source": "zoo", "mutants": ["stores"], "mutate_under": ["extended"]}},
            "dataset": {"images": "default", "labels": "default", "limit": 4},
            "mutations": {"stores": {"operator": "store_subtract", "sites": {"sample": sites, "seed": 0}}},
            "optimisations": {"extended": extended}, "frameworks": ["onnxruntime"],
            "compare": {"reference": "onnxruntime", "float64_reference": False},
            "targets": {"x86_64": {"kind": "llvm"}}, "devices": {"cpu": {"target": "x86_64"}}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", type=Path, help="default: a new temporary directory")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "sweep_plan.csv")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="deltamut-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    config = work / "study.yaml"
    config.write_text(yaml.safe_dump(study(args.sites)))
    base = [*SNAKEMAKE, "--configfile", str(config), "-d", str(work)]
    census = "results/efficientnet_lite0/tvm/extended/sweeps/stores.json"
    t0 = time.perf_counter()
    done = subprocess.run([*base, "--cores", "2", census], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the census failed:\n{done.stderr[-3000:]}")
    census_s = time.perf_counter() - t0
    plans = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        done = subprocess.run([*base, "-n", "--quiet", "rules"], capture_output=True, text=True)
        plans.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(f"snakemake -n failed:\n{(done.stdout + done.stderr)[-3000:]}")
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", done.stdout + done.stderr, re.M)}
    row = {"sites": args.sites, "planned_mutate": counts.get("mutate", 0), "planned_jobs": counts.get("total", 0),
           "census_s": round(census_s, 1), "plan_median_s": round(statistics.median(plans), 2),
           "plan_max_s": round(max(plans), 2), "runs": args.runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(args.out, index=False)
    for key, value in row.items():
        print(f"{key:15s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
