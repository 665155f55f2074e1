"""Mutants that behave as one: outputs that agree within their measured noise on every image.

Two mutants can differ in IR and still be the same mutation in effect: MutateNN's `a < b + 0.5` and `a <= b`
on integer guards admit the same out-of-bounds index, and their logits differ only by the jitter of what
they read there. Counting both would count one finding twice in its category. The mutate stage catches
such twins before building where a canonical form of the IR shows it (`mutations.equivalence`); this
catches the rest after running, from the outputs alone: the same observed status on every image and, where
both ran, logits within the noise both sides measured (their repeat and rerun spreads, the float32 floor)
plus the thresholds' atol/rtol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from deltamut.compare.verdicts import Thresholds, Verdict, grade_images
from deltamut.outcome import Status
from deltamut.runner.outputs import Outputs

__all__ = ["agree_within_noise", "output_twins"]

_SAME = (Verdict.IDENTICAL.value, Verdict.WITHIN_NOISE.value)


def agree_within_noise(a: Outputs, b: Outputs, thresholds: Thresholds, floor: np.ndarray | None = None) -> bool:
    """The same observed status on every image, at least one image that both ran, and there the same outputs
    within both sides' measured noise."""
    sa, sb = a.observed_status, b.observed_status
    if len(sa) != len(sb) or not (sa == sb).all():
        return False
    ok = sa == Status.OK.value
    if not ok.any() or a.logits.shape != b.logits.shape:
        return False
    noise = a.spread + b.spread + (0.0 if floor is None else np.nan_to_num(floor, nan=0.0))
    verdicts = grade_images(a.logits[ok], b.logits[ok], sa[ok], sb[ok], noise[ok], thresholds)
    return bool(np.isin(verdicts, _SAME).all())


def output_twins(groups: Iterable[tuple[tuple, list[str]]], load: Callable[[str], Outputs], thresholds: Thresholds,
                 floor: np.ndarray | None = None) -> dict[tuple, str]:
    """For each group (key, variant ids of mutants run under one optimisation and device, named by mutant),
    map (*key, mutant) of every mutant whose outputs repeat a mutant with a smaller name to that mutant.

    Candidates are bucketed by their per-image statuses and top-1 labels first: mutants that agree within noise
    almost always share them, so the quadratic comparison runs inside small buckets only (a label that flips
    on a near-tie keeps two mutants apart, which errs on the side of counting both)."""
    twins: dict[tuple, str] = {}
    for key, ids in groups:
        buckets: dict[tuple, list[tuple[str, Outputs]]] = {}
        for mutant, vid in sorted(ids):
            out = load(vid)
            status = out.observed_status
            if (status == Status.EQUIVALENT.value).all():
                continue
            top1 = np.where(status == Status.OK.value, np.nan_to_num(out.logits, nan=-np.inf).argmax(1), -1) \
                if out.logits.shape[1] else np.full(len(status), -1)
            bucket = buckets.setdefault((tuple(status), tuple(top1)), [])
            first = next((m for m, o in bucket if agree_within_noise(out, o, thresholds, floor)), None)
            if first is None:
                bucket.append((mutant, out))
            else:
                twins[(*key, mutant)] = first
    return twins
