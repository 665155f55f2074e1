"""The images a probe runs on and the predicate it must confirm, chosen from the pair's own per-image table.

A finding is judged by labels on many images, not by one input: the witness set is the pair's flipped images
first (where both sides ran), then those whose logits moved most, at most `max_images`; the predicate is "top-1
flips on at least k of them" with k half the flips among the witnesses (rounded up), so a probe that reproduces
most of what compare saw confirms it, and one that reproduces none does not. A pair that flips no image but
whose variant fails where its baseline runs (a crash, a hang, NaN logits) has the predicate "fails with the
same symptom on at least k of them": the witnesses are the images that failed with its most frequent symptom,
k half of them (rounded up), so that a probe cannot drift to another failure (deltamut.localise.symptom).
Any other pair has the predicate "the logits move beyond the noise" (a survived mutant's effect may still be
masked somewhere); a bisection, whose trial builds are judged against the reference's recorded outputs, reads
it as "the trial departs from the reference by at least half as much as the full build did" (`against_reference`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deltamut.numeric import relative_diff
from deltamut.outcome import FAILED, Status

FLIPS, DRIFT, SYMPTOM = "flips", "drift", "symptom"


def witnesses(per_image: str | Path, a: str, b: str, max_images: int) -> dict[str, Any]:
    """The witness image ids and the predicate of pair (a, b) from compare's per-image table."""
    rows = pd.read_parquet(per_image, filters=[("a", "==", a), ("b", "==", b)])
    ran = rows[(rows["status_a"] == Status.OK.value) & (rows["status_b"] == Status.OK.value)]
    failed = rows[rows["status_a"].isin([s.value for s in FAILED]) & (rows["status_b"] == Status.OK.value)]
    if ran["top1_agree"].all() and not failed.empty:
        return _symptom(rows, failed, len(ran), max_images)
    flipped = ran[~ran["top1_agree"]]
    moved = ran[ran["top1_agree"]].sort_values("max_abs_err", ascending=False)
    chosen = list(flipped["image"])[:max_images]
    chosen += list(moved["image"])[: max_images - len(chosen)]
    flips = len(flipped)
    k = math.ceil(min(flips, max_images) / 2) if flips else 0
    top1_b, err = ran.set_index("image")["top1_b"], ran.set_index("image")["max_abs_err"]
    return {"kind": FLIPS if k else DRIFT, "k": k, "images": chosen, "flipped_in_table": flips,
            "images_in_table": len(rows), "ran_in_table": len(ran),
            "reference_top1": [int(top1_b[i]) for i in chosen],  # `b`'s recorded top-1 on each witness
            "max_abs_err": [float(err[i]) for i in chosen]}  # and how far `a`'s logits were from `b`'s there


def _symptom(rows: pd.DataFrame, failed: pd.DataFrame, ran: int, max_images: int) -> dict[str, Any]:
    """The symptom predicate: the variant's most frequent failure (the first in the vocabulary's order on a tie)
    and the images it failed with it, the baseline running."""
    counts = failed["status_a"].value_counts()
    symptom = min(counts.index[counts == counts.max()], key=[s.value for s in Status].index)
    chosen = list(failed.loc[failed["status_a"] == symptom, "image"])[:max_images]
    top1_b = failed.set_index("image")["top1_b"]
    return {"kind": SYMPTOM, "symptom": symptom, "k": math.ceil(len(chosen) / 2), "images": chosen,
            "failed_in_table": int(counts.sum()), "flipped_in_table": 0, "images_in_table": len(rows),
            "ran_in_table": ran,
            "reference_top1": [int(top1_b[i]) for i in chosen]}


def witness_images(inputs: str | Path, images: list[str]) -> np.ndarray:
    """The witnesses' preprocessed inputs, in the witnesses' order, from an inputs file (`ids`, `x`)."""
    with np.load(inputs) as data:
        ids = [str(i) for i in data["ids"]]
        return data["x"][[ids.index(i) for i in images]]


def confirmed(predicate: dict[str, Any], logits: dict[str, dict[str, np.ndarray]], tolerance: float) -> dict:
    """Whether the probe's own runs reproduce the predicate: how many witnesses flip, and whether that is
    enough."""
    flips = [i for i, v in logits.items() if int(np.argmax(v["a"])) != int(np.argmax(v["b"]))]
    moved = [i for i, v in logits.items() if not relative_diff(v["a"], v["b"]) <= tolerance]
    holds = len(flips) >= predicate["k"] if predicate["kind"] == FLIPS else bool(moved)
    return {"holds": holds, "flipped": flips, "moved": moved}


def against_reference(predicate: dict[str, Any], reference: np.ndarray | None = None):
    """The predicate judged against the reference's recorded outputs (a bisection's, where the reference is a
    framework that is not rebuilt): a function of a stack of logits, one row per witness, that holds where
    top-1 differs from the reference's on at least k of them; for a drift predicate (`reference`: the
    reference's logits on the witnesses), where max |Δ| against them reaches half the full build's recorded
    departure on at least half the witnesses. Half: a build that carries the departure is told from one that
    does not (bisection checks that the build with every step off does not), whatever rounding adds or
    cancels along the way."""
    if predicate["kind"] == DRIFT:
        return _drifts(predicate["images"], np.asarray(predicate["max_abs_err"], np.float64) / 2, reference)
    images, k = predicate["images"], int(predicate["k"])
    expected = np.asarray(predicate["reference_top1"])

    def flips(logits: np.ndarray) -> dict[str, Any]:
        moved = [images[i] for i in np.flatnonzero(logits.argmax(axis=1) != expected)]
        return {"holds": len(moved) >= k, "flipped": moved}

    return flips


def _drifts(images: list[str], bar: np.ndarray, reference: np.ndarray | None):
    if reference is None:
        raise ValueError("a drift predicate is judged against the reference's logits on the witnesses: none given")
    k = math.ceil(len(images) / 2)

    def drifts(logits: np.ndarray) -> dict[str, Any]:
        err = np.abs(logits.astype(np.float64) - reference).max(axis=1)
        moved = [images[i] for i in np.flatnonzero(~(err < bar))]  # NaN counts as departed
        return {"holds": len(moved) >= k, "moved": moved, "max_abs_err": [float(e) for e in err]}

    return drifts
