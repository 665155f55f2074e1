"""Your own model in one command: a study of one ONNX classifier on a folder of images, everything else the
schema's defaults (the three optimisations, the host CPU, the runner settings).

    .venv/bin/python -m deltamut.own_model model.onnx photos/ [--input-shape 224 | 48 192] [--labels labels.csv]
        [--classes names.txt] [--preprocessing tflite]

writes the study file `results/own/<model>.yaml` (a few lines: the model and the images, nothing else, so
it can be edited and rerun as any study) and runs it with the local profile; `make own ONNX=... IMAGES=...`
does the same. The result is in `results/<model>/compare/summary.md`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from deltamut import paths
from deltamut.data.preprocessing import PRESETS

REPO = Path(__file__).resolve().parents[1]


def model_name(onnx_path: str | Path) -> str:
    """A study name for the file: its stem, with what a model name cannot hold replaced by `_`."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", Path(onnx_path).stem) or "model"


def own_study(onnx_path: str | Path, images: str | Path, input_shape: list[int] | None = None,
              labels: str | Path | None = None, classes: str | Path | None = None,
              preprocessing: str | None = None) -> dict[str, Any]:
    """The smallest study of one ONNX file on a folder of images (paths made absolute, so the file can be
    run from anywhere)."""
    model: dict[str, Any] = {"source": "onnx", "path": str(Path(onnx_path).resolve())}
    if input_shape:
        model["input_shape"] = input_shape[0] if len(input_shape) == 1 else list(input_shape)
    if preprocessing:
        model["preprocessing"] = preprocessing
    if classes:
        model["labels"] = str(Path(classes).resolve())
    return {"models": {model_name(onnx_path): model},
            "dataset": {"images": str(Path(images).resolve()),
                        "labels": str(Path(labels).resolve()) if labels else None}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx", help="the ONNX classifier")
    ap.add_argument("images", help="a folder of images")
    ap.add_argument("--input-shape", type=int, nargs="+", metavar="N",
                    help="S or H W, for a file whose input size is dynamic")
    ap.add_argument("--labels", help="ground truth: a CSV of file,class (an id or a name; optional: photos in "
                    "folders named by class label themselves)")
    ap.add_argument("--classes", help="the model's class names: one per line, or a JSON list or index -> name")
    ap.add_argument("--preprocessing", choices=sorted(PRESETS), help="a preset (default torchvision)")
    ap.add_argument("--dry-run", "-n", action="store_true", help="plan only")
    args = ap.parse_args(argv)
    if args.input_shape and len(args.input_shape) not in (1, 2):
        ap.error("--input-shape takes S or H W")
    study = own_study(args.onnx, args.images, args.input_shape, args.labels, args.classes, args.preprocessing)
    path = Path(paths.fill(paths.OWN_STUDY, model=model_name(args.onnx)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    print(f"study file: {path}")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--profile",
           str(REPO / "profiles" / "local"), "--configfile", str(path), *(["-n"] if args.dry_run else [])]
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    raise SystemExit(main())
