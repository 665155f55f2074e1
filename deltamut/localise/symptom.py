"""Where a failure starts: the kernel a crash or a hang dies in, or the first to write a NaN, rerun to confirm.

A pair whose variant fails where its baseline runs has no values to compare past the failure, so its predicate
is the symptom itself ("fails with crash on at least k of the witnesses", deltamut.localise.witness), as the
compilers' own reducers keep a crash's signature so that the search cannot drift to another bug. Each witness
runs in a child process of its own (a crash ends the child, so one image cannot hide the next), with a trail
file written before every kernel starts (a line reaches the kernel's file buffers when written, so it survives
the process being killed): when the child dies of a signal or is killed at its time limit, the trail's last
kernel is the one it died in; when it finishes with non-finite logits, the first kernel whose output holds a
NaN or an inf is where the symptom starts. That kernel is named in ONNX terms by its position in the
baseline's own trace (deltamut.localise.naming), which lines up with the variant's for a kernel-level mutant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deltamut.isolation import call_isolated
from deltamut.outcome import Status

DIED_IN, FIRST_NONFINITE = "died in", "first non-finite"


def trail_worker(lib: str, inputs: str, image: str, trail: str) -> dict[str, Any]:
    """Run one witness on `lib`, writing `<call>\\t<kernel>` to `trail` as each kernel starts; return whether the
    logits are finite and the first kernel call whose output is not."""
    from deltamut.localise.kernels import TracedBuild
    from deltamut.localise.witness import witness_images

    x = witness_images(inputs, [image])
    build = TracedBuild(lib)
    calls, first_bad = [0], {}
    with open(trail, "w", buffering=1) as out:

        def before(name: str) -> None:
            out.write(f"{calls[0]}\t{name}\n")
            out.flush()

        def after(name: str, args: tuple) -> None:
            if not first_bad and not np.isfinite(args[-1].numpy()).all():
                first_bad.update(index=calls[0], kernel=name)
            calls[0] += 1

        logits = build.run(x, after, before)
    return {"finite": bool(np.isfinite(logits).all()), "first_nonfinite": first_bad or None, "calls": calls[0]}


def _last_started(trail: Path) -> dict[str, Any] | None:
    lines = trail.read_text().splitlines() if trail.is_file() else []
    if not lines:
        return None
    index, kernel = lines[-1].split("\t", 1)
    return {"index": int(index), "kernel": kernel}


def observe(lib: str | Path, inputs: str | Path, images: list[str], timeout_s: float, log: str | Path,
            workdir: str | Path) -> pd.DataFrame:
    """One row per witness: the symptom this run of `lib` shows on it (the outcome vocabulary), and where it
    starts (`how`: died in, first non-finite)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for image in images:
        trail = workdir / f"trail-{len(rows)}.tsv"
        res = call_isolated(trail_worker, {"lib": str(lib), "inputs": str(inputs), "image": image,
                                           "trail": str(trail)}, timeout_s, log)
        row: dict[str, Any] = {"image": image, "observed": res.status, "index": None, "kernel": None, "how": None,
                               "error": res.error.splitlines()[0][:200] if res.error else ""}
        if res.ok:
            where = res.value["first_nonfinite"]
            row["observed"] = Status.OK.value if res.value["finite"] else Status.NAN.value
            if where:
                row.update(where, how=FIRST_NONFINITE)
        elif res.status in (Status.CRASH, Status.TIMEOUT) and (where := _last_started(trail)):
            row.update(where, how=DIED_IN)
        rows.append(row)
    return pd.DataFrame(rows)


def locate(table: pd.DataFrame, predicate: dict[str, Any], names: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The profile of a failure: whether the rerun shows the predicate's symptom on at least k witnesses, and
    the kernel call where it starts on the most of them (the earliest on a tie), with its ONNX node from
    `names` (the baseline's kernels in call order, deltamut.localise.naming)."""
    same = table[table["observed"] == predicate["symptom"]]
    confirmed = {"holds": len(same) >= int(predicate["k"]), "symptom": predicate["symptom"],
                 "shown_by": list(same["image"]), "observed": dict(zip(table["image"], table["observed"], strict=True))}
    out: dict[str, Any] = {"confirmed": confirmed, "root": None, "root_index": None, "root_kernel": None,
                           "root_by": None, "root_onnx_node": None, "root_onnx_op_type": None, "root_images": 0}
    placed = same.dropna(subset=["index"])
    if placed.empty:
        return out
    counts = placed.groupby(["index", "kernel", "how"]).size().reset_index(name="n")
    best = counts.sort_values(["n", "index"], ascending=[False, True]).iloc[0]
    index = int(best["index"])
    named = names[index] if names and index < len(names) else {}
    node, op = named.get("node"), named.get("op_type")
    out.update(root=f"#{index} {best['kernel']}" + (f" = ONNX {op} {node}" if node else ""), root_index=index,
               root_kernel=best["kernel"], root_by=best["how"], root_onnx_node=node, root_onnx_op_type=op,
               root_images=int(best["n"]))
    return out


def names_worker(lib: str, onnx_path: str, inputs: str, image: str) -> list[dict[str, Any]]:
    """The baseline's kernels in call order on one witness, named as kernel mode names them."""
    from deltamut.localise.kernels import TracedBuild
    from deltamut.localise.profile import kernel_names
    from deltamut.localise.witness import witness_images

    return kernel_names(TracedBuild(lib), onnx_path, witness_images(inputs, [image]))
