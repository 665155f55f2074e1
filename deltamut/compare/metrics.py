"""Per-image metrics between two classifier outputs.

Every function takes logit arrays of shape (N, C) (one row per image, float32 or float64) and returns one
value per image, shape (N,), so a whole result file is compared in one vectorised call and the values land
directly in a table column. Arithmetic runs in float64, so comparing two float32 outputs never loses the
differences being measured to the arithmetic of the comparison itself.

Conventions shared by all functions:

- ``b`` is the reference side where a metric is asymmetric (relative error, RMSE).
- A row holding NaN or inf gives NaN (or ``False`` for boolean metrics): a broken output has no ranking
  and no distance, and NaN keeps that visible in the tables instead of a made-up number.
- Rankings sort by descending score with ties broken by the lower class index (a stable sort), so equal
  scores rank the same way on both sides and ties alone never look like a reordering.

The MutateNN/DeltaNN tools computed Kendall's tau over sequences of label ids and Manhattan/Minkowski
distances that were always 0; here tau compares the two score vectors of one image and the distances use
the softmax probabilities.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import scipy.special
import scipy.stats

from deltamut.numeric import max_abs_diff

__all__ = [
    "cosine",
    "kendall_tau",
    "manhattan",
    "max_abs_err",
    "max_rel_err",
    "minkowski",
    "ranking",
    "rbo",
    "rbo_lists",
    "rmse",
    "softmax",
    "top1_agree",
    "topk",
    "topk_jaccard",
]


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two (N, C) outputs and lift them to float64 (differences below float32 resolution count)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"expected two arrays of the same shape (N, C), got {a.shape} and {b.shape}")
    return a, b


def _finite_rows(*arrays: np.ndarray) -> np.ndarray:
    ok = np.ones(arrays[0].shape[0], dtype=bool)
    for x in arrays:
        ok &= np.isfinite(x).all(axis=1)
    return ok


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64; scipy subtracts the row maximum, so large logits do not overflow."""
    x = np.asarray(logits, dtype=np.float64)
    return scipy.special.softmax(x, axis=-1)


def ranking(scores: np.ndarray) -> np.ndarray:
    """Class indices of each row by descending score, ties to the lower index; NaN scores rank last."""
    x = np.asarray(scores, dtype=np.float64)
    return np.argsort(-x, axis=-1, kind="stable")


def top1_agree(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether both sides predict the same label; False where either row is not finite."""
    a, b = _pair(a, b)
    same = np.argmax(a, axis=1) == np.argmax(b, axis=1)
    return same & _finite_rows(a, b)


def topk(a: np.ndarray, k: int = 5) -> np.ndarray:
    """The k best classes of each row, best first (shape (N, k))."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return ranking(a)[..., :k]


def topk_jaccard(a: np.ndarray, b: np.ndarray, k: int = 5) -> np.ndarray:
    """|A ∩ B| / |A ∪ B| of the two top-k label sets, in [0, 1]; ignores the order inside the top k."""
    a, b = _pair(a, b)
    k = min(k, a.shape[1])
    ta, tb = topk(a, k), topk(b, k)
    inter = (ta[:, :, None] == tb[:, None, :]).any(axis=2).sum(axis=1)
    out = inter / (2 * k - inter)
    return np.where(_finite_rows(a, b), out, np.nan)


def kendall_tau(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between the two score vectors of each image.

    Computed on the logits: softmax is strictly increasing so the ranks are the same, and logits avoid the
    ties that probabilities underflowing to 0 would create. tau-b corrects for genuine ties (a constant
    row gives NaN: it has no ranking to correlate).
    """
    a, b = _pair(a, b)
    out = np.full(a.shape[0], np.nan)
    ok = _finite_rows(a, b) & (np.ptp(a, axis=1) > 0) & (np.ptp(b, axis=1) > 0)
    if ok.any():
        res = scipy.stats.kendalltau(a[ok], b[ok], variant="b", axis=1)
        out[ok] = res.statistic
    return out


def _check_p(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"RBO persistence p must lie in (0, 1), got {p}")


def _rbo_ext(agreement: np.ndarray, p: float) -> np.ndarray:
    """RBO_ext from the agreements A_1..A_k (last axis) of two prefixes of depth k.

    Webber, Moffat and Zobel (2010): RBO = (1-p) sum_d p^(d-1) A_d over all depths. Only depth k is seen,
    so RBO_ext assumes the agreement stays at A_k below it; the tail then sums to A_k p^k.
    """
    k = agreement.shape[-1]
    weights = (1.0 - p) * p ** np.arange(k)
    return agreement @ weights + agreement[..., -1] * p**k


def rbo(a: np.ndarray, b: np.ndarray, p: float = 0.9, depth: int | None = None) -> np.ndarray:
    """Extrapolated rank-biased overlap (RBO_ext) of the two class rankings of each image, in [0, 1].

    Top-weighted: with p = 0.9 the first 10 ranks carry about 86% of the weight, so a reordering among
    the likely classes counts, and one among the thousand unlikely ones barely does. ``depth`` limits the
    prefix compared (None: all C classes; at p = 0.9 ranks past 100 weigh less than 3e-5 in total).
    """
    _check_p(p)
    a, b = _pair(a, b)
    n, c = a.shape
    k = c if depth is None else min(int(depth), c)
    if k < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    rows = np.arange(n)[:, None]
    pos_a = np.empty((n, c), dtype=np.int64)
    pos_b = np.empty((n, c), dtype=np.int64)
    pos_a[rows, ranking(a)] = np.arange(c)
    pos_b[rows, ranking(b)] = np.arange(c)
    # A class is in both depth-d prefixes exactly when its worse rank on the two sides is below d, so the
    # overlap X_d is a cumulative histogram of that worse rank.
    worst = np.maximum(pos_a, pos_b)
    seen = worst < k
    counts = np.bincount((rows * k + worst)[seen], minlength=n * k).reshape(n, k)
    overlap = np.cumsum(counts, axis=1)
    out = _rbo_ext(overlap / np.arange(1, k + 1), p)
    return np.where(_finite_rows(a, b), out, np.nan)


def rbo_lists(list1: Sequence[Hashable], list2: Sequence[Hashable], p: float = 0.9) -> float:
    """RBO_ext of two explicit rankings (best first, no duplicates), possibly of different lengths.

    For uneven lists (Webber et al. 2010, section 4.3) the short list S of length s is assumed to go on
    agreeing at its seen rate X_s/s, so for s < d <= l the agreement is X_d/d + X_s (d - s) / (s d), where
    X_d counts the seen items of S inside the first d of the long list.
    """
    _check_p(p)
    for lst in (list1, list2):
        if len(set(lst)) != len(lst):
            raise ValueError("a ranking must not repeat an item")
    short, long_ = (list1, list2) if len(list1) <= len(list2) else (list2, list1)
    s, length = len(short), len(long_)
    if s == 0:
        raise ValueError("RBO of an empty ranking is undefined")
    seen_short: set[Hashable] = set()
    seen_long: set[Hashable] = set()
    overlap = x_s = 0
    agreement = np.empty(length)
    for d in range(1, length + 1):
        item_l = long_[d - 1]
        if d <= s:
            item_s = short[d - 1]
            overlap += (item_s in seen_long) + (item_l in seen_short) + (item_s == item_l)
            seen_short.add(item_s)
        else:
            overlap += item_l in seen_short
        seen_long.add(item_l)
        agreement[d - 1] = overlap / d
        if d > s:
            agreement[d - 1] += x_s * (d - s) / (s * d)
        if d == s:
            x_s = overlap
    return float(_rbo_ext(agreement, p))


def max_abs_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest absolute logit difference of each image (`numeric.max_abs_diff`: NaN where one is not finite)."""
    a, b = _pair(a, b)
    return max_abs_diff(a, b, axis=1)


def max_rel_err(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """max|a - b| / max(max|b|, eps) per image: the error relative to the scale of the reference row.

    Not elementwise |a - b| / |b|: logits cross zero, and near-zero entries would turn harmless absolute
    rounding into huge relative errors that say nothing about the prediction.
    """
    a, b = _pair(a, b)
    scale = np.maximum(np.max(np.abs(b), axis=1), eps)
    return np.max(np.abs(a - b), axis=1) / scale


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of the logit vectors, in [-1, 1].

    A zero vector has no direction: two zero rows count as 1 (the outputs are the same), one zero row
    against a non-zero one as 0. Integer-cast mutants can output all zeros, and NaN here would read as a
    NaN output.
    """
    a, b = _pair(a, b)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.clip(dot / (na * nb), -1.0, 1.0)
    out = np.where((na == 0) & (nb == 0), 1.0, out)
    out = np.where((na == 0) ^ (nb == 0), 0.0, out)
    return np.where(_finite_rows(a, b), out, np.nan)


def rmse(a: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Root-mean-square error of each row against a reference (e.g. a float64 run of the same model)."""
    a, ref = _pair(a, ref)
    return np.sqrt(np.mean((a - ref) ** 2, axis=1))


def minkowski(a: np.ndarray, b: np.ndarray, p: float = 3.0, from_logits: bool = True) -> np.ndarray:
    """Minkowski distance of order p (>= 1) between the probability vectors of each image.

    Probabilities, not logits: they are what a user of the classifier sees, and they are bounded, so
    distances compare across models (the L1 distance is in [0, 2]). ``from_logits=False`` takes inputs
    that already are probabilities.
    """
    if p < 1:
        raise ValueError(f"Minkowski order must be >= 1, got {p}")
    a, b = _pair(a, b)
    if from_logits:
        a, b = softmax(a), softmax(b)
    return np.linalg.norm(a - b, ord=p, axis=1)


def manhattan(a: np.ndarray, b: np.ndarray, from_logits: bool = True) -> np.ndarray:
    """L1 distance between the probability vectors of each image, in [0, 2]."""
    return minkowski(a, b, p=1.0, from_logits=from_logits)
