"""How many SLURM submissions a study makes, with and without the cluster profile's job grouping.

Plans the study with `snakemake -n` twice (no groups merged; the `group-components` of
profiles/gpu-cluster/config.yaml) and counts what the SLURM executor would submit: every group job once,
every other job that is not a local rule once. Each submission pays a scheduler round trip and, inside the
job, a Python + Snakemake + TVM start; the second is measured here (a lower bound: the job also re-parses the
workflow), the first is the site's. Usage:

    .venv/bin/python bench/submissions.py --configfile bench/paper_scale.yaml --out submissions.csv
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "gpu-cluster" / "config.yaml"


def plan(configfile: Path, groups: list[str]) -> str:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(configfile),
           "-n", "--cores", "4", "-d", str(REPO), *(["--group-components", *groups] if groups else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc.stdout


def local_rules() -> set[str]:
    """Rules the head process runs itself: `localrule: True` ones, and `all` (a target without a command)."""
    found = {"all"}
    for path in (REPO / "rules").glob("*.smk"):
        for block in re.split(r"^(?=(?:rule|checkpoint) )", path.read_text(), flags=re.M):
            m = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if m and re.search(r"^\s+localrule: True", block, flags=re.M):
                found.add(m.group(1))
    return found


def count(dry_run: str) -> dict[str, int]:
    """Submissions in a dry run's listing: every group job once, every other job once unless it is local."""
    stats = dry_run[dry_run.index("Job stats:"):]
    per_rule = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats.split("\n\n")[0],
                                                                  flags=re.M) if m.group(1) != "total"}
    local = sum(n for rule, n in per_rule.items() if rule in local_rules())
    groups = re.findall(r"^\[.*\] Group job (\S+) ", dry_run, flags=re.M)
    in_groups = len(re.findall(r"^    (?:rule|checkpoint) \S+:$", dry_run, flags=re.M))
    jobs = sum(per_rule.values())
    return {"jobs": jobs, "local_jobs": local, "group_jobs": len(groups), "jobs_in_groups": in_groups,
            "submissions": len(groups) + jobs - local - in_groups}


def job_start_s(runs: int = 3) -> float:
    """What a SLURM job pays before its work: Python with Snakemake, TVM, ONNX Runtime and torch imported."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import snakemake.api, tvm, onnxruntime, torch"], check=True,
                       capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", type=Path, default=REPO / "bench" / "paper_scale.yaml")
    ap.add_argument("--out", type=Path, default=Path("submissions.csv"))
    args = ap.parse_args(argv)
    grouping = yaml.safe_load(PROFILE.read_text()).get("group-components", [])
    start = job_start_s()
    rows = []
    for label, groups in (("no grouping", None), ("profile: " + " ".join(grouping), grouping)):
        t0 = time.perf_counter()
        counts = count(plan(args.configfile, groups or []))
        if groups is None:  # what the executor submitted before the rules declared groups: one job, one sbatch
            counts |= {"group_jobs": 0, "jobs_in_groups": 0, "submissions": counts["jobs"] - counts["local_jobs"]}
        rows.append({"plan": label, **counts, "plan_s": round(time.perf_counter() - t0, 1),
                     "job_start_s": round(start, 2), "starts_total_min": round(counts["submissions"] * start / 60, 1)})
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
