"""torch -> ONNX with the dynamo exporter, as one self-contained file that keeps the model's layers.

The dynamo exporter is the one whose output TVM imports for every zoo model (the legacy exporter's
EfficientNet-Lite has dynamic pads that TVM rejects); `external_data=False` keeps weights inside the
file so it can be cached and copied as one artifact.

Its optimiser (onnxscript's) folds every BatchNormalization into the Conv before it. That is an
optimisation, and optimisations are what deltamut tests: the ONNX here keeps the layers as the model
defines them, batch norm included, so that MutateNN's batch-norm operators find their layers (MutateNN
mutated the graph as the frontend imported it) and folding batch norm is left to the compiler
configuration that asks for it. Everything else the optimiser does (constant folding, Clip from Min/Max,
pads into convs, no-op removal) still runs: the same rules minus the three that fuse batch norm.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from deltamut.fsutil import atomic_path

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def check_onnx(path: str | Path):
    """Load and check an ONNX file; raise ValueError naming the file when it is missing or corrupt."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: ONNX file not found")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ValueError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {str(exc)[:300]})") from exc
    return model


def _optimise_keeping_layers(model) -> None:
    """onnxscript's optimisation loop (constant folding, rewrite rules, dead-node removal, twice, as
    `optimize_ir` does) with its default rewrite rules except those that fuse BatchNormalization."""
    import onnxscript.optimizer as optimizer
    import onnxscript.rewriter as rewriter
    from onnxscript.rewriter.rules import common

    fusions = (common.fuse_batchnorm_into_conv_rule, common.fuse_batchnorm_into_conv_transpose_rule,
               common.fuse_batchnorm_into_gemm_rule)
    # the default rule list has no public name in onnxscript 0.7.2 (pinned); its members do
    rules = [r for r in rewriter._DEFAULT_REWRITE_RULES if r not in fusions]
    for _ in range(2):
        optimizer.fold_constants(model)
        rewriter.rewrite(model, pattern_rewrite_rules=rules)
        optimizer.remove_unused_nodes(model)


def export_model(info, out: str | Path, opset: int | None = None, exporter: str | None = None, batch: int = 1,
                 images: np.ndarray | None = None) -> dict:
    """Write `info`'s model to `out` as ONNX, for `batch` images per call, and return what was done (for
    provenance).

    `info` is a `deltamut.models.ModelInfo`. A model that already is an ONNX file gets its input fixed at
    `batch` x the study's input shape and its shape subgraphs folded, checked in ONNX Runtime on `images`
    (the study's preprocessed images, which it then needs; `deltamut.export.onnx_prepare`).
    """
    import torch

    from deltamut.defaults import defaults

    opset = int(opset or defaults("export")["opset"])
    exporter = exporter or defaults("export")["exporter"]
    out = Path(out)
    if info.module is None:
        from deltamut.export.onnx_prepare import prepare_onnx

        check_onnx(info.onnx_path)
        if images is None:
            raise ValueError(f"{info.onnx_path}: preparing an ONNX file needs the study's images to check it on")
        return {"exporter": "prepare", **prepare_onnx(info.onnx_path, out, (batch, *info.input_shape[1:]), images)}
    x = torch.zeros((batch, *info.input_shape[1:]), dtype=torch.float32)
    names = {"opset_version": opset, "input_names": [INPUT_NAME], "output_names": [OUTPUT_NAME]}
    with atomic_path(out) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            program = torch.onnx.export(info.module.eval(), (x,), dynamo=True, optimize=False, **names)
            _optimise_keeping_layers(program.model)
            program.save(str(tmp), external_data=False)
        else:  # the legacy TorchScript exporter, a DeltaNN conversion: exported as it comes
            torch.onnx.export(info.module.eval(), (x,), str(tmp), dynamo=False, external_data=False, **names)
        check_onnx(tmp)
    return {"exporter": exporter, "opset": opset, "batch": batch}
