"""Per-job overhead of the pipeline against the work itself (issue #7.3: under 3 s per job).

Runs a small study (tests/configs/tiny.yaml by default) in a temporary directory, then compares each job's
wall time with the work it did. Wall times come from the jobs' `benchmark:` TSVs (the `s` column) or, for
rules without one, from the timestamps of Snakemake's log (1 s resolution). Work is what the outputs record:
infer and reference jobs the model calls (measured latencies, plus warm-up and rerun calls counted at the
median latency), deploy jobs TVM's build and export time. Where no work is recorded (compile, mutate), the
table leaves it blank and the fixed costs below tell what a job pays regardless of its work: process start,
imports, library load. They are measured in fresh interpreters, as every job and every isolated child starts
one. Usage:

    .venv/bin/python bench/pipeline_overhead.py --out overhead.csv          # run tiny.yaml, then analyse
    .venv/bin/python bench/pipeline_overhead.py --from-dir /tmp/study       # analyse a finished run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deltamut import paths  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 3.0

# rule -> the file recording a job's work, from the wildcards of its benchmark path
# (results/benchmarks/<rule>/<key>.tsv, as rules/*.smk name them).
_WORK_FILES = {  # the file each job records its work in, and its wildcards in the order its benchmark path has them
    "infer": (paths.OUTPUTS, ("model", "opt", "mutant", "device")),
    "reference": (paths.REFERENCE, ("model", "framework")),
    "deploy": (paths.DEPLOY, ("model", "opt", "mutant", "target")),
    "mutate": (paths.MANIFEST, ("model", "opt", "mutant")),
}


# What each fixed cost runs in a fresh interpreter; `{lib}` is a library built by the run.
_NO_TORCH = "import sys; sys.modules['torch'] = None; "
FIXED_COSTS = {
    "python_start": "pass",
    "import_snakemake_script": "import snakemake.script",
    "import_deltamut_stages": "import deltamut.runner.stage, deltamut.compiler.stage, deltamut.mutations.stage",
    "import_torch": "import torch",
    "import_onnxruntime": "import onnxruntime",
    "import_tvm": "import tvm; from tvm import relax",
    "import_tvm_without_torch": _NO_TORCH + "import tvm; from tvm import relax",
    "import_tvm_runtime_only": _NO_TORCH + "import tvm; from tvm.runtime.vm import VirtualMachine",
    "import_tvm_load_lib_vm": "import tvm; from tvm import relax; "
                              "relax.VirtualMachine(tvm.runtime.load_module({lib!r}), tvm.cpu())",
}
_ENV = {"import_tvm_runtime_only": {"TVM_USE_RUNTIME_LIB": "1"}}


# --- wall times ---------------------------------------------------------------------------------------
def read_benchmark(tsv: Path) -> dict[str, float]:
    """The columns of a Snakemake benchmark TSV (the last row when the job was repeated): `s` is the wall
    time, `cpu_time` what psutil saw of the job's process tree (children that end between samples are missed)."""
    lines = [ln for ln in tsv.read_text().splitlines() if ln.strip()]
    row = dict(zip(lines[0].split("\t"), lines[-1].split("\t"), strict=True))
    return {k: float(v) for k, v in row.items() if k in ("s", "cpu_time") and v not in ("", "NA", "-")}


def benchmark_jobs(workdir: Path) -> list[dict[str, Any]]:
    """One row per benchmark TSV under results/benchmarks: rule, key (the wildcards' path), wall seconds."""
    root = workdir / paths.BENCHMARKS
    rows = []
    for tsv in sorted(root.glob("*/**/*.tsv")):
        rel = tsv.relative_to(root).with_suffix("")
        rule, key = rel.parts[0], "/".join(rel.parts[1:])
        bench = read_benchmark(tsv)
        rows.append({"rule": rule, "key": key, "wall_s": bench["s"], "cpu_s": bench.get("cpu_time"),
                     "wall_source": "benchmark"})
    return rows


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def log_jobs(text: str) -> list[dict[str, Any]]:
    """Jobs and their wall seconds from a Snakemake log: start and finish stamps (whole seconds)."""
    stamp: datetime | None = None
    rule: str | None = None
    started: dict[str, tuple[str, datetime]] = {}
    rows = []
    for line in text.splitlines():
        if m := _STAMP.match(line):
            stamp = datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            rule = m.group(1)
        elif (m := _JOBID.match(line)) and rule and stamp:
            started[m.group(1)] = (rule, stamp)
            rule = None
        elif (m := _FINISHED.match(line)) and m.group(1) in started and stamp:
            name, t0 = started.pop(m.group(1))
            rows.append({"rule": name, "key": f"jobid {m.group(1)}", "wall_s": (stamp - t0).total_seconds(),
                         "wall_source": "log"})
    return rows


# --- work -----------------------------------------------------------------------------------------------
def run_work_s(latency_ms: np.ndarray, meta: dict[str, Any]) -> float:
    """Seconds spent running the dataset.

    Outputs with a timeline (the workers' wall-clock stamps): from each run's first image start to its last
    image end, summed over the main run and the reruns; the rest of the job (process starts, imports, model
    or library load, waiting for held workers, teardown) is overhead. Older outputs: the timed repeats, plus
    the warm-up calls and the rerun passes (one call per image each), which are not timed and are counted at
    the median call latency; that undercounts slow first calls and per-image bookkeeping."""
    spans = [(t.get("first_image"), t.get("last_image")) for t in meta.get("timeline") or []]
    if spans and all(a is not None and b is not None for a, b in spans):
        return float(sum(b - a for a, b in spans))
    measured = latency_ms[np.isfinite(latency_ms)]
    if measured.size == 0:
        return 0.0
    settings = meta.get("settings", {})
    reruns = meta.get("reruns", {})
    untimed = int(settings.get("warmup", 0)) + (int(reruns.get("runs", 1)) - 1) * int(reruns.get("images", 0))
    return float(measured.sum() + untimed * np.median(measured)) / 1e3


def work_s(workdir: Path, rule: str, key: str) -> float | None:
    """The work a job recorded in its outputs, or None for a rule that records none."""
    if rule not in _WORK_FILES:
        return None
    template, names = _WORK_FILES[rule]
    path = workdir / paths.fill(template, **dict(zip(names, key.split("/"), strict=True)))
    if not path.exists():
        return None
    if rule == "deploy":
        info = json.loads(path.read_text())
        if info.get("status") != "ok":
            return 0.0
        return float(info.get("compile_s", 0.0)) + float(info.get("export_s", 0.0))
    if rule == "mutate":  # recorded only once the mutate stage times its TVM call (`mutate_s`)
        seconds = json.loads(path.read_text()).get("mutate_s")
        return None if seconds is None else float(seconds)
    from deltamut.runner.outputs import load_outputs

    out = load_outputs(path)
    return run_work_s(out.latency_ms, out.meta)


# --- fixed costs ----------------------------------------------------------------------------------------
def fixed_costs(lib: Path | None, repeats: int = 3) -> dict[str, float]:
    """Median wall seconds of each FIXED_COSTS snippet in a fresh interpreter."""
    out = {}
    for name, code in FIXED_COSTS.items():
        if "{lib" in code:
            if lib is None:
                continue
            code = code.format(lib=str(lib))
        env = {**os.environ, "PYTHONPATH": str(REPO), **_ENV.get(name, {})}
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


# --- the table ------------------------------------------------------------------------------------------
def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 2) if known else None


def summarise(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rule: job count, median wall, median work and median overhead (wall - work, per job)."""
    table = []
    for rule in dict.fromkeys(j["rule"] for j in jobs):
        mine = [j for j in jobs if j["rule"] == rule]
        with_work = [j for j in mine if j.get("work_s") is not None]
        row = {"rule": rule, "jobs": len(mine), "wall_source": mine[0]["wall_source"],
               "median_wall_s": round(statistics.median(j["wall_s"] for j in mine), 2),
               "median_cpu_s": _median_or_none([j.get("cpu_s") for j in mine]),
               "median_work_s": None, "median_overhead_s": None, "max_overhead_s": None, "verdict": ""}
        if with_work:
            over = [j["wall_s"] - j["work_s"] for j in with_work]
            row.update(median_work_s=round(statistics.median(j["work_s"] for j in with_work), 2),
                       median_overhead_s=round(statistics.median(over), 2), max_overhead_s=round(max(over), 2),
                       verdict="ok" if max(over) < TARGET_S else f"over {TARGET_S:g} s")
        table.append(row)
    return table


def collect(workdir: Path) -> list[dict[str, Any]]:
    """Every job of a finished run with its wall and work seconds; benchmark TSVs win over log stamps."""
    jobs = benchmark_jobs(workdir)
    timed = {j["rule"] for j in jobs}
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    for log in logs[-1:]:
        jobs += [j for j in log_jobs(log.read_text()) if j["rule"] not in timed and j["rule"] != "all"]
    for j in jobs:
        j["work_s"] = work_s(workdir, j["rule"], j["key"])
    return jobs


def run_study(configfile: Path, workdir: Path, cores: int, serial: bool = True) -> float:
    """Wall seconds of the whole study. `serial` runs one job at a time (each job asks for the one unit of a
    resource there is), so that no job's wall time includes a neighbour's work; jobs keep `cores` threads."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(configfile),
           "--directory", str(workdir), "--cores", str(cores)]
    if serial:
        cmd += ["--resources", "bench_slot=1", "--default-resources", "bench_slot=1"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the study failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return time.perf_counter() - t0


def _fmt(v: Any) -> str:
    return "-" if v is None else str(v)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configfile", type=Path, default=REPO / "tests" / "configs" / "tiny.yaml")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--concurrent", action="store_true",
                    help="let jobs run side by side (the default runs one at a time)")
    ap.add_argument("--from-dir", type=Path, help="analyse this finished run instead of running the study")
    ap.add_argument("--keep", action="store_true", help="keep the temporary study directory")
    ap.add_argument("--out", type=Path, default=Path("pipeline_overhead.csv"))
    ap.add_argument("--repeats", type=int, default=3, help="runs of each fixed-cost measurement")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    sys.path.insert(0, str(REPO))
    study_s = None
    if args.from_dir:
        workdir = args.from_dir.resolve()
    else:
        workdir = Path(tempfile.mkdtemp(prefix="deltamut-overhead-"))
        study_s = run_study(args.configfile.resolve(), workdir, args.cores, serial=not args.concurrent)
    jobs = collect(workdir)
    table = summarise(jobs)
    libs = sorted(workdir.glob("results/*/tvm/*/*/deploy/*/lib.so"))
    fixed = fixed_costs(libs[0] if libs else None, args.repeats)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    fixed_csv = args.out.with_name(args.out.stem + "_fixed.csv")
    with fixed_csv.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["cost", "median_s"])
        writer.writerows([k, round(v, 3)] for k, v in fixed.items())

    print(f"{'rule':12s} {'jobs':>4s} {'wall s':>8s} {'cpu s':>6s} {'work s':>8s} {'overhead s':>10s} "
          f"{'max':>6s}  from")
    for r in table:
        print(f"{r['rule']:12s} {r['jobs']:4d} {r['median_wall_s']:8.2f} {_fmt(r['median_cpu_s']):>6s} "
              f"{_fmt(r['median_work_s']):>8s} "
              f"{_fmt(r['median_overhead_s']):>10s} {_fmt(r['max_overhead_s']):>6s}  {r['wall_source']} {r['verdict']}")
    print("\nfixed costs, fresh interpreter (median s):")
    for k, v in fixed.items():
        print(f"  {k:28s} {v:6.2f}")
    if study_s is not None:
        mode = "concurrent" if args.concurrent else "one job at a time"
        print(f"\nstudy wall time: {study_s:.1f} s ({args.configfile.name}, --cores {args.cores}, {mode})")
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}")
    print(f"written {args.out} and {fixed_csv}")
    if not args.from_dir and not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    elif not args.from_dir:
        print(f"study kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
