"""Where a disagreement starts and how it travels: the root kernel, the error growth, masking, the flips.

For a killed mutant this is its propagation profile: the layer where its effect first exceeds the noise
floor, whether a later layer masks it (a ReLU or max-pool that clips the changed values away), and which images
it flips. The same reading serves any pair of builds whose kernels line up (an optimisation that changes
codegen only, one build on two hosts).

The noise floor of a kernel is what the reference build's own rerun shows at that kernel (zero on a
deterministic CPU) or `tolerance` (relative to the tensor's largest value), whichever is larger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deltamut.localise.kernels import DeviceBuild, TracedBuild, compare_kernels, compare_on_device
from deltamut.localise.naming import name_kernels, onnx_tensors
from deltamut.numeric import relative_diff

#: Relative error a kernel's output may carry without counting as a departure: ~8 float32 ulps of its largest value.
TOLERANCE = 1e-6


def kernel_table(a_lib: str | Path, b_lib: str | Path, images: np.ndarray, ids: list[str],
                 onnx_path: str | Path | None = None, tolerance: float = TOLERANCE,
                 b_device: dict[str, Any] | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per kernel call and image, with its ONNX name (by value, on the reference `a`), its noise floor
    and whether its local and propagated errors exceed it; and per image both builds' logits. `b_device`: where
    `b` runs when not on this CPU (a backend spec without its `lib`: `target_kind`, and `rpc` or `tracker` for a
    board), its kernels then called there (deltamut.localise.kernels.DeviceBuild)."""
    a = TracedBuild(a_lib)
    if b_device is not None:
        b = DeviceBuild({**b_device, "lib": str(b_lib)})
        try:
            rows, logits = compare_on_device(a, b, images, ids)
        finally:
            b.close()
    else:
        rows, logits = compare_kernels(a, TracedBuild(b_lib), images, ids)
    noise, _ = compare_kernels(a, a, images, ids)  # the original against its own second run
    table = pd.DataFrame(rows)
    floor = pd.DataFrame(noise).groupby("index")[["propagated_rel", "local_rel"]].max().max(axis=1)
    table["floor_rel"] = np.maximum(table["index"].map(floor).fillna(0.0).to_numpy(float) * 4, tolerance)
    table["local_departs"] = table["local_rel"].astype(float) > table["floor_rel"]
    table["propagated_departs"] = table["propagated_rel"].astype(float) > table["floor_rel"]
    if onnx_path is not None:
        names = kernel_names(a, onnx_path, images[0][None])
        for col in ("tensor", "node", "op_type"):
            table[f"onnx_{col}"] = table["index"].map({i: n[col] for i, n in enumerate(names)})
    return table, logits


def kernel_names(a: TracedBuild, onnx_path: str | Path, x: np.ndarray) -> list[dict[str, Any]]:
    """`a`'s kernels in call order on batch `x`, each named by the ONNX tensor its output equals (or None)."""
    calls, _ = a.trace(x)
    return name_kernels([(c.name, c.output) for c in calls], onnx_tensors(onnx_path, x))


def _root_by(row: pd.Series) -> str:
    if not row["aligned"]:
        return "sequence"
    return "replay" if row["local_departs"] else "other kernel"


def _label(row: pd.Series | dict) -> str:
    node = row.get("onnx_node")
    where = f" = ONNX {row.get('onnx_op_type')} {node}" if isinstance(node, str) else ""
    return f"#{int(row['index'])} {row['kernel']}{where}"


def propagation(table: pd.DataFrame, logits: dict[str, dict[str, np.ndarray]], tolerance: float = TOLERANCE) -> dict:
    """The profile of one pair (module doc): per image and over the images."""
    per_image = []
    for image, rows in table.groupby("image", sort=False):
        rows = rows.sort_values("index")
        a, b = logits[image]["a"], logits[image]["b"]
        out_rel = relative_diff(a, b)
        # the root: the first kernel that adds error by itself (the mutant's kernel at that call, replayed on the
        # original's inputs, departs), the first call where the mutant runs a kernel that cannot be replayed
        # there (other code, other arguments), or where the kernel sequences part (an inserted operator); where
        # neither happens but outputs still depart, the kernels ran the same code on other constants (a weight
        # mutant), so the first departing output is the root
        # not replayable: another kernel at that call, or one of the same name whose signature differs (the CPU
        # schedule rules packed its weights for another instruction set), which counts where its output departs
        renamed = rows["mutant_kernel"] != rows["kernel"]
        refused = rows["replay_error"].notna() & ~renamed & rows["propagated_departs"]
        other_code = (renamed | refused) & rows["local_rel"].isna()
        root = rows[rows["local_departs"] | ~rows["aligned"] | other_code].head(1)
        onset = rows[rows["propagated_departs"]].head(1)
        by = None if root.empty else _root_by(root.iloc[0])
        if root.empty and not onset.empty:  # same code, other inputs: a changed weight or constant
            root, by = onset, "propagated"
        entry: dict[str, Any] = {
            "image": image, "flipped": bool(np.argmax(a) != np.argmax(b)),
            "top1_a": int(np.argmax(a)), "top1_b": int(np.argmax(b)),
            "logits_rel": out_rel, "reaches_output": not out_rel <= tolerance,
            "root": None if root.empty else _label(root.iloc[0]),
            "root_by": by,
            "root_index": None if root.empty else int(root.iloc[0]["index"]),
            "onset": None if onset.empty else _label(onset.iloc[0]),
            "onset_index": None if onset.empty else int(onset.iloc[0]["index"]),
            "masked_at": None,
        }
        if not onset.empty and not entry["reaches_output"]:
            after = rows[(rows["index"] > entry["onset_index"]) & ~rows["propagated_departs"]
                         & rows["propagated_rel"].notna()].head(1)
            entry["masked_at"] = None if after.empty else _label(after.iloc[0])
        per_image.append(entry)
    growth = (table.groupby("index").agg(kernel=("kernel", "first"), propagated_rel=("propagated_rel", "median"),
                                         local_rel=("local_rel", "median"), floor_rel=("floor_rel", "first"))
              .reset_index())
    return {
        **_root(table, per_image),
        "images": len(per_image),
        "flipped": [e["image"] for e in per_image if e["flipped"]],
        "reaches_output": sum(e["reaches_output"] for e in per_image),
        "masked": [e["image"] for e in per_image if e["onset"] is not None and not e["reaches_output"]],
        "per_image": per_image,
        "growth": growth.replace({np.nan: None}).to_dict("records"),
    }


def _root(table: pd.DataFrame, per_image: list[dict[str, Any]]) -> dict[str, Any]:
    """The earliest root over the images: its label, call, how it was found, both builds' kernels there and
    its ONNX node (all None when no image departs)."""
    keys = ("root", "root_index", "root_by", "root_kernel", "root_mutant_kernel", "root_onnx_node",
            "root_onnx_op_type")
    earliest = min((e for e in per_image if e["root_index"] is not None), key=lambda e: e["root_index"], default=None)
    if earliest is None:
        return dict.fromkeys(keys)
    row = table[table["index"] == earliest["root_index"]].iloc[0]
    return dict(zip(keys, (_label(row), int(row["index"]), earliest["root_by"], row["kernel"], row["mutant_kernel"],
                           _onnx(row, "onnx_node"), _onnx(row, "onnx_op_type")), strict=True))


def _onnx(row: pd.Series, col: str) -> str | None:
    value = row.get(col)
    return value if isinstance(value, str) else None
