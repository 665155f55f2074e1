"""Which ONNX classifiers TVM imports before and after deltamut prepares them, and what preparing costs.

Each model is exported the way users' files usually come: by the legacy exporter with a dynamic batch and
dynamic spatial dims (`[n, 3, h, w]`), plus the test suite's classifiers (tests/user_models.py): one whose
flatten target is computed through a Cast (as Paddle and older TF exports do), and one exported by the dynamo
exporter, at a non-square 48 x 192 input and channels-last. "Before" imports the file as given into TVM at the
study's shape (`shape_dict`); "after" imports the file `prepare_onnx` wrote (input fixed, shape subgraphs
folded, checked in ONNX Runtime on seeded images). Usage:

    .venv/bin/python bench/onnx_prepare.py --models mobilenet_v2,resnet50,efficientnet_lite0 --out onnx_prepare.csv
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _import(path: Path, shape: tuple[int, ...]) -> tuple[str, float]:
    from deltamut.compiler.importer import import_onnx

    t0 = time.perf_counter()
    try:
        import_onnx(path, shape)
        return "ok", time.perf_counter() - t0
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}", time.perf_counter() - t0


def _export_dynamic(module: torch.nn.Module, path: Path, size: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (torch.zeros(1, 3, size, size),), str(path), dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n"}})


def _files(models: list[str], tmp: Path) -> list[tuple[str, Path, tuple[int, ...]]]:
    from deltamut.models import load_model
    from tests import user_models

    out = []
    for name in models:
        info = load_model(name, {"source": "zoo"})
        path = tmp / f"{name}.onnx"
        _export_dynamic(info.module, path, info.input_shape[-1])
        out.append((f"{name} (legacy, dynamic)", path, info.input_shape))
    net = user_models.classifier()
    onnx.save(user_models.shape_subgraph_model(net), str(tmp / "cast_shape.onnx"))
    out.append(("classifier with a Cast in its reshape target", tmp / "cast_shape.onnx", (1, 3, 24, 24)))
    user_models.export_dynamic(net, tmp / "dynamo.onnx", (24, 24), dynamo=True)
    out.append(("classifier (dynamo, dynamic)", tmp / "dynamo.onnx", (1, 3, 24, 24)))
    user_models.export_dynamic(net, tmp / "wide.onnx", (48, 192))
    out.append(("classifier at 48 x 192 (legacy, dynamic)", tmp / "wide.onnx", (1, 3, 48, 192)))
    user_models.export_dynamic(user_models.ChannelsLast(net), tmp / "nhwc.onnx", (24, 24), channels_last=True)
    out.append(("classifier, NHWC (legacy, dynamic)", tmp / "nhwc.onnx", (1, 24, 24, 3)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mobilenet_v2,resnet50,efficientnet_lite0")
    ap.add_argument("--images", type=int, default=4, help="seeded images the prepared file is checked on")
    ap.add_argument("--out", type=Path, default=Path("onnx_prepare.csv"))
    args = ap.parse_args(argv)
    from deltamut.export.onnx_prepare import prepare_onnx

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, shape in _files(args.models.split(","), Path(tmp)):
            images = np.random.default_rng(0).standard_normal((args.images, *shape[1:])).astype(np.float32)
            before, _ = _import(path, shape)
            prepared = Path(tmp) / f"prepared_{path.name}"
            record = prepare_onnx(path, prepared, shape, images)
            after, import_s = _import(prepared, shape)
            seconds = {f"{k}_s": v for k, v in record["seconds"].items()}
            rows.append({"model": label, "tvm_before": before, "tvm_after": after,
                         "nodes_given": record["nodes_given"], "nodes_prepared": record["nodes"],
                         "folded": record["folded"], "max_abs_diff": record["fold_check"]["max_abs_diff"],
                         **seconds, "tvm_import_s": round(import_s, 2)})
            print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
