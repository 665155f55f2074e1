"""Per-job peak memory and wall time against the image count, with and without `dataset.shard_size` (#15.4).

For each image count N, writes N images made from the real default photos by seeded crops, flips and colour
changes, and runs a one-model study on them (MobileNetV2 at 224 x 224, ONNX Runtime as the reference, TVM
`extended` on the CPU, one timed call per image): first unsharded, then, in the same directory, with
`--shard-size` (so export, compile and deploy are not redone; only the per-image jobs and compare rerun). Per
rule, the table gives the jobs, the largest peak RSS of any job (Snakemake's `benchmark:` records, `max_rss`)
and the summed and median job wall times. Usage:

    .venv/bin/python bench/shards.py --images 500,5000 --shard-size 250 --out shards.csv
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image, ImageEnhance, ImageOps

REPO = Path(__file__).resolve().parents[1]
PER_IMAGE_RULES = ("dataset", "reference", "infer", "compare")


def synthesise(photos: list[Path], n: int, out: Path, seed: int = 0) -> Path:
    """`n` JPEGs, image i made from photo i mod len(photos) with its own generator (seed + i): a crop of 40 to
    100% of its area, a mirror flip half the time, colour, brightness and contrast each scaled by 0.7 to 1.3."""
    out.mkdir(parents=True, exist_ok=True)
    sources = [Image.open(p).convert("RGB") for p in photos]
    for i in range(n):
        rng = np.random.default_rng(seed + i)
        im = sources[i % len(sources)]
        area = rng.uniform(0.4, 1.0)
        w, h = max(8, int(im.width * area ** 0.5)), max(8, int(im.height * area ** 0.5))
        x0, y0 = int(rng.integers(0, im.width - w + 1)), int(rng.integers(0, im.height - h + 1))
        crop = im.crop((x0, y0, x0 + w, y0 + h))
        if rng.random() < 0.5:
            crop = ImageOps.mirror(crop)
        for enhance in (ImageEnhance.Color, ImageEnhance.Brightness, ImageEnhance.Contrast):
            crop = enhance(crop).enhance(rng.uniform(0.7, 1.3))
        crop.thumbnail((320, 320))
        crop.save(out / f"gen_{i:05d}.jpg", quality=90)
    return out


def study(images: Path, shard_size: int | None) -> dict:
    return {
        "models": {"mobilenet_v2": {"source": "zoo", "arch": "mobilenet_v2", "seed": 0, "mutants": []}},
        "dataset": {"images": str(images), "labels": None, "shard_size": shard_size},
        "frameworks": ["onnxruntime"],
        "optimisations": {"extended": {"passes": ["DecomposeOpsForInference", "CanonicalizeBindings",
                                                  "EliminateCommonSubexpr", "FoldConstant"],
                                       "llvm": {"opt-level": 3, "fast-math": True}, "schedule": "rules"}},
        "targets": {"x86_64": {"kind": "llvm"}},
        "devices": {"cpu": {"target": "x86_64"}},
        "runner": {"warmup": 1, "repeats": 1, "reruns": 1},
        "compare": {"reference": "onnxruntime", "float64_reference": False},
    }


def run(work: Path, config: dict, cores: int) -> float:
    (work / "study.yaml").write_text(yaml.safe_dump(config))
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
                           "--configfile", str(work / "study.yaml"), "--cores", str(cores)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the study in {work} failed:\n{done.stderr[-4000:]}")
    return time.monotonic() - t0


def job_records(work: Path, since: float) -> pd.DataFrame:
    """One row per job recorded after `since` (a rule's benchmark TSVs): rule, wall seconds, peak RSS (MB)."""
    rows = []
    for rule in PER_IMAGE_RULES:
        for tsv in (work / "results" / "benchmarks" / rule).rglob("*.tsv"):
            if tsv.stat().st_mtime < since:
                continue
            rec = pd.read_csv(tsv, sep="\t").iloc[-1]
            rows.append({"rule": rule, "wall_s": float(rec["s"]), "max_rss_mb": float(rec["max_rss"])})
    return pd.DataFrame(rows)


def summarise(records: pd.DataFrame, images: int, shard_size: int | None, study_s: float) -> list[dict]:
    out = []
    for rule, group in records.groupby("rule", sort=False):
        out.append({"images": images, "shard_size": shard_size or "", "rule": rule, "jobs": len(group),
                    "peak_rss_mb": round(group.max_rss_mb.max(), 1), "sum_wall_s": round(group.wall_s.sum(), 1),
                    "median_wall_s": round(group.wall_s.median(), 2), "study_wall_s": round(study_s, 1)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="500,5000", help="comma-separated image counts")
    ap.add_argument("--shard-size", type=int, default=250)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="keep the studies here (default: a new temporary directory)")
    ap.add_argument("--out", type=Path, default=Path("shards.csv"))
    args = ap.parse_args(argv)
    from deltamut.data import gather_default_images

    root = args.workdir or Path(tempfile.mkdtemp(prefix="deltamut-shards-"))
    photos = sorted(gather_default_images(root / "photos"))
    rows = []
    for n in (int(x) for x in args.images.split(",")):
        images = synthesise(photos, n, root / f"images{n}")
        work = root / f"study{n}"
        work.mkdir(parents=True, exist_ok=True)
        for shard_size in (None, args.shard_size):
            since = time.time()
            secs = run(work, study(images, shard_size), args.cores)
            rows += summarise(job_records(work, since), n, shard_size, secs)
            print(pd.DataFrame(rows).tail(len(PER_IMAGE_RULES)).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
