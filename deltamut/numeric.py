"""The one "max |Δ|" of deltamut: how far two arrays of logits are apart.

Used for a run against its rerun (the rerun spread), batch-B against batch-1 outputs (throughput), and two
variants' logits per image (compare). One NaN rule for all: the difference at a position where either side is
not finite is not a number (NaN propagates, as in |a - b|), so a NaN output is never mistaken for a small or
a large difference; what to make of it is the caller's (a status says the output was NaN).
"""

from __future__ import annotations

import numpy as np


def max_abs_diff(a: np.ndarray, b: np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """max |a - b| over all elements (`axis=None`: a float; arrays of different shapes are infinitely far
    apart) or along `axis` (an array; the shapes must match). NaN wherever a non-finite value took part."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        if axis is None:
            return float("inf")
        raise ValueError(f"cannot compare arrays of shapes {a.shape} and {b.shape}")
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    if axis is None:
        return float(np.max(diff, initial=0.0)) if not np.isnan(diff).any() else float("nan")
    return np.max(diff, axis=axis)


def relative_diff(ref: np.ndarray, other: np.ndarray) -> float:
    """max |ref - other| as a fraction of ref's largest magnitude: one scale for tensors whose values range
    over orders of magnitude from layer to layer (localisation compares every kernel's output). 0 for equal
    all-zero tensors, inf for any difference from an all-zero one; NaN where max_abs_diff is."""
    worst = max_abs_diff(ref, other)
    scale = float(np.max(np.abs(np.asarray(ref, dtype=np.float64)), initial=0.0))
    if scale > 0 or np.isnan(worst):
        return worst / scale if scale > 0 else worst
    return 0.0 if worst == 0 else float("inf")
