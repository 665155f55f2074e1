"""Probes and wall time per localisation on EfficientNet-Lite0, one finding of each kind (issue #14).

Runs a Lite0 study in a fresh directory whose findings are selected by verdict (`localise: {kinds: [mutant,
compiler, device]}`): the three mutants the default study localises (a graph-level add -> subtract, a
graph-level ReLU6 -> sigmoid, a kernel-level subtraction at every store) under `extended`; `extended` and
`extended` with LLVM fast-math against the reference (bisected where they flip labels or drift); and the host
CPU against a second host-CPU device whose target leaves out FMA (its kernels replayed); then reads every
probe's record and `benchmark:` file. One row per probe: its kind, predicate,
root kernel (kernel mode) and node (named mode), whether the marking made it vanish, the reproducer's nodes
before and after and the builds its search took, the bisection's culprits and trial builds, and the job's wall
time. Takes 15 minutes or more on 2 cores. Usage:

    .venv/bin/python bench/localise_time.py --images 16 --out localise_time.csv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from deltamut.defaults import section_default

REPO = Path(__file__).resolve().parents[1]
MUTANTS = ["mnn10_add_to_subtract", "mnn11_relu_to_sigmoid", "mnn16_store_minus_delta"]


def study(images: int) -> dict:
    extended = section_default("optimisations")["extended"]
    fast = {**extended, "llvm": {**extended.get("llvm", {}), "fast-math": True}}
    fast.pop("description", None)
    return {
        "models": {"lite0": {"source": "zoo", "arch": "efficientnet_lite0", "mutants": MUTANTS,
                             "mutate_under": ["extended"]}},
        "dataset": {"images": "default", "labels": "default", "limit": images},
        "mutation_catalog": str(REPO / "config" / "mutations.yaml"),
        "optimisations": {"extended": extended, "fast": fast},
        "targets": {"x86_64": {"kind": "llvm"}, "x86_nofma": {"kind": "llvm", "mattr": ["-fma"]}},
        "devices": {"cpu": {"target": "x86_64"}, "nofma": {"target": "x86_nofma"}},
        "localise": {"kinds": ["mutant", "compiler", "device"],
                     "verdicts": ["top1_flip", "numeric_drift", "within_noise"],
                     "variants": ["*/cpu", "tvm/*/original/nofma"]},
    }


def _wall(bench: Path) -> float | None:
    return float(pd.read_csv(bench, sep="\t")["s"].iloc[-1]) if bench.is_file() else None


def rows(work: Path) -> list[dict]:
    out = []
    results = work / "results" / "lite0" / "tvm"
    records = sorted(results.glob("*/*/localise/*/profile.json")) + sorted(results.glob("*/localise/*/bisect.json"))
    records += sorted(results.glob("*/original/localise/*/against/*/profile.json"))
    for record in records:
        r = json.loads(record.read_text())
        if record.parts[-3] == "against":  # a device pair's: .../<opt>/original/localise/<device>/against/<base>
            kind, mutant = "device", "original"
            bench = work / "results" / "benchmarks" / "localise_device" / "lite0" / "/".join(
                (record.parts[-7], mutant, record.parts[-4], record.parts[-2]))
        else:
            mutant = record.parts[-4] if record.name == "profile.json" else ""
            kind = "mutant" if mutant else "compiler"
            bench = work / "results" / "benchmarks" / ("localise" if mutant else "bisect") / "lite0" / \
                "/".join(p for p in (record.parts[-5] if mutant else record.parts[-4], mutant, record.parts[-2]) if p)
        named, bundle = r.get("named") or {}, r.get("bundle") or {}
        pred = r.get("predicate", {})
        out.append({
            "probe": r["a"], "kind": kind, "status": r["status"],
            "predicate": f"{pred.get('kind')} k={pred.get('k')} of {len(pred.get('images', []))}",
            "root_kernel": r.get("root"), "named_root": named.get("root"), "named_vanished": named.get("vanished"),
            "culprits": ", ".join(r.get("culprits") or []) or None,
            "bisect_builds": len({tuple(t["enabled"]) for t in r.get("trials", [])}) or None,
            "result": r.get("result"), "confirmed": (r.get("confirmed") or {}).get("holds"),
            "bundle": bundle.get("result"), "nodes_before": bundle.get("nodes_before"),
            "nodes_after": bundle.get("nodes_after"), "bundle_builds": bundle.get("builds"),
            "wall_s": _wall(bench.with_suffix(".tsv")), "reason": (r.get("reason") or "")[:120]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16, help="photos of the default set (46 at most)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="run here (default: a new temporary directory)")
    ap.add_argument("--out", type=Path, default=Path("localise_time.csv"))
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="deltamut-localise-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "study.yaml").write_text(yaml.safe_dump(study(args.images)))
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
                           "--configfile", str(work / "study.yaml"), "--cores", str(args.cores)],
                          capture_output=True, text=True)
    print(f"study: return code {done.returncode}, {time.monotonic() - t0:.0f} s, in {work}")
    table = pd.DataFrame(rows(work))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
