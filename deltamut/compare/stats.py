"""Statistics for the compare stage: label flips, latency and run-to-run noise.

The original tools reported "% of images whose top-1 differs" and a one-way ANOVA over single, unwarmed
timings. Here a flip rate comes with McNemar's test (are the two sides' accuracies really different, or is
it a handful of coin flips?), latency with a distribution-free test and an effect size (timings are skewed
and heavy-tailed, so no normality is assumed), and every output difference can be set against the noise a
backend shows when nothing changed at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.stats

__all__ = [
    "LatencyComparison",
    "McNemarResult",
    "MedianCI",
    "compare_latency",
    "compare_rounds",
    "mcnemar",
    "median_ci",
    "noise_budget",
    "noise_floor",
]


@dataclass(frozen=True, slots=True)
class McNemarResult:
    """McNemar's test on paired per-image correctness.

    ``b``: images only side A gets right; ``c``: images only side B gets right. ``method`` is "exact"
    (binomial test on the discordant pairs, ``statistic`` = min(b, c)) or "chi2_cc" (chi-square with
    continuity correction, ``statistic`` = (|b - c| - 1)^2 / (b + c)).
    """

    b: int
    c: int
    statistic: float
    pvalue: float
    method: str


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray, exact_below: int = 25) -> McNemarResult:
    """Test whether two sides classify the same images with different accuracy.

    Only discordant images carry information. Under the null each is equally likely to favour either
    side, so b ~ Binomial(b + c, 1/2); the exact test is used while b + c < ``exact_below``, where the
    chi-square approximation is poor, and the corrected chi-square above it.
    """
    ca = np.asarray(correct_a, dtype=bool)
    cb = np.asarray(correct_b, dtype=bool)
    if ca.shape != cb.shape:
        raise ValueError(f"paired arrays must have the same shape, got {ca.shape} and {cb.shape}")
    b = int(np.count_nonzero(ca & ~cb))
    c = int(np.count_nonzero(~ca & cb))
    n = b + c
    if n == 0:
        return McNemarResult(b, c, 0.0, 1.0, "exact")
    if n < exact_below:
        pvalue = scipy.stats.binomtest(b, n, 0.5, alternative="two-sided").pvalue
        return McNemarResult(b, c, float(min(b, c)), float(pvalue), "exact")
    statistic = (abs(b - c) - 1) ** 2 / n
    return McNemarResult(b, c, float(statistic), float(scipy.stats.chi2.sf(statistic, df=1)), "chi2_cc")


class MedianCI(NamedTuple):
    median: float
    low: float
    high: float


def _clean(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def median_ci(samples: np.ndarray, confidence: float = 0.95) -> MedianCI:
    """Median with a distribution-free confidence interval from order statistics.

    The number of samples below the true median is Binomial(n, 1/2) whatever the distribution, so a pair
    of order statistics brackets it with a known probability (``scipy.stats.quantile_test``); no
    resampling, hence no seed and no variation between calls. Needs n >= 6 at 95%: for smaller samples the
    widest interval, (min, max), covers the median with probability only 1 - 2^(1-n), and that is what is
    returned. Non-finite samples are dropped; none left gives NaNs.
    """
    x = _clean(samples)
    if x.size == 0:
        return MedianCI(math.nan, math.nan, math.nan)
    median = float(np.median(x))
    if x.size == 1:
        return MedianCI(median, median, median)
    ci = scipy.stats.quantile_test(x, q=median, p=0.5).confidence_interval(confidence)
    low = float(ci.low) if np.isfinite(ci.low) else float(x.min())
    high = float(ci.high) if np.isfinite(ci.high) else float(x.max())
    return MedianCI(median, low, high)


@dataclass(frozen=True, slots=True)
class LatencyComparison:
    """Latency of side B against side A.

    ``ratio`` = median_b / median_a (> 1: B is slower), with a percentile-bootstrap interval
    [``ci_low``, ``ci_high``]. ``pvalue``: two-sided Mann-Whitney U. ``effect_size``: Cliff's delta,
    P(b > a) - P(b < a) over all pairs of timings, in [-1, 1] (+1: every B timing is slower than every A
    timing). NaN where the samples are too small for the quantity.
    """

    median_a: float
    median_b: float
    ratio: float
    ci_low: float
    ci_high: float
    pvalue: float
    effect_size: float
    n_a: int
    n_b: int


def _median_ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.median(b, axis=axis) / np.median(a, axis=axis)


def compare_latency(
    a_ms: np.ndarray,
    b_ms: np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> LatencyComparison:
    """Compare two sets of timings (warm runs, milliseconds) without assuming any distribution.

    The ratio of medians is the quantity a reader wants ("B takes 1.3x as long"), so its interval comes
    from a seeded bootstrap (reproducible; percentile method, which stays defined when every timing is
    equal). Mann-Whitney's U gives the p-value and, rescaled, Cliff's delta. Non-finite timings are
    dropped; the bootstrap needs two timings per side, the test one.
    """
    a = _clean(a_ms)
    b = _clean(b_ms)
    n_a, n_b = int(a.size), int(b.size)
    nan = math.nan
    median_a = float(np.median(a)) if n_a else nan
    median_b = float(np.median(b)) if n_b else nan
    ratio = median_b / median_a if n_a and n_b and median_a > 0 else nan
    if not (n_a and n_b):
        return LatencyComparison(median_a, median_b, ratio, nan, nan, nan, nan, n_a, n_b)

    u_b, pvalue = scipy.stats.mannwhitneyu(b, a, alternative="two-sided")
    # U for B counts the pairs where B is larger (ties count half): 2U/(n_a n_b) - 1 = P(b>a) - P(b<a).
    effect = 2.0 * float(u_b) / (n_a * n_b) - 1.0

    ci_low = ci_high = nan
    if n_a >= 2 and n_b >= 2 and median_a > 0 and a.min() > 0:
        res = scipy.stats.bootstrap(
            (a, b),
            _median_ratio,
            paired=False,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        ci_low, ci_high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return LatencyComparison(median_a, median_b, ratio, ci_low, ci_high, float(pvalue), effect, n_a, n_b)


def compare_rounds(
    a_rounds: list[list[float]],
    b_rounds: list[list[float]],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> LatencyComparison:
    """Compare two variants timed in the same interleaved rounds (`deltamut.timing`): round r of A and of B ran
    within seconds of each other, so a drift of the machine's load moves both.

    Each round gives one ratio, median(B's calls) / median(A's calls); the load cancels in it. ``ratio`` is the
    median of the round ratios, its interval a seeded percentile bootstrap over rounds, and the p-value the
    bootstrap's own two-sided test of the median log ratio against 0 (twice the share of resampled medians on
    the far side of 0: p < 1 - confidence exactly when the interval excludes 1). The rounds, not the calls, are
    the independent observations (calls minutes apart share the machine's state, which is why pooling them made
    8-15 of 15 A/A comparisons "significant"). The median's test, not Wilcoxon's signed ranks: a round in which
    one side met a load spike has a large log ratio, which the signed-rank test weighs by its size, so two or
    three such rounds made it miss 12 of 15 planted 1.3x slowdowns in one run here; the median ignores them.
    ``effect_size`` is the share of rounds where B was slower minus the share where
    it was faster, in [-1, 1]. Only rounds where both sides have a finite timing count; n_a = n_b = rounds.
    """
    nan = math.nan
    medians = [(np.median(_clean(a)), np.median(_clean(b))) for a, b in zip(a_rounds, b_rounds, strict=False)
               if _clean(a).size and _clean(b).size]
    med = np.asarray([m for m in medians if m[0] > 0 and m[1] > 0], dtype=np.float64).reshape(-1, 2)
    n = int(med.shape[0])
    if n == 0:
        return LatencyComparison(nan, nan, nan, nan, nan, nan, nan, 0, 0)
    median_a, median_b = float(np.median(med[:, 0])), float(np.median(med[:, 1]))
    logs = np.log(med[:, 1] / med[:, 0])
    ratio = float(np.exp(np.median(logs)))
    effect = float(np.mean(np.sign(logs)))
    if n < 2:
        return LatencyComparison(median_a, median_b, ratio, nan, nan, nan, effect, n, n)
    res = scipy.stats.bootstrap((logs,), np.median, vectorized=True, n_resamples=n_resamples,
                                confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    ci_low, ci_high = float(np.exp(res.confidence_interval.low)), float(np.exp(res.confidence_interval.high))
    medians_star = np.asarray(res.bootstrap_distribution)
    far = min(int(np.sum(medians_star <= 0)), int(np.sum(medians_star >= 0)))
    pvalue = min(1.0, 2.0 * (far + 1) / (medians_star.size + 1))
    return LatencyComparison(median_a, median_b, ratio, ci_low, ci_high, pvalue, effect, n, n)


def noise_floor(repeats: np.ndarray) -> dict[str, object]:
    """Run-to-run numeric noise of one backend, from R repeated runs over the same N images (R, N, C).

    ``per_image``: the largest difference between any two repeats of an image (max over classes of the
    max-minus-min over repeats), so 0 on a deterministic backend; NaN where a repeat was NaN.
    ``max``: its maximum over images. ``repeats``: R. ``measured``: False when R < 2, where the noise is
    unknown and reported as 0 (the backend is treated as deterministic rather than as infinitely noisy).
    """
    x = np.asarray(repeats, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] < 1:
        raise ValueError(f"expected repeats of shape (R, N, C) with R >= 1, got {x.shape}")
    per_image = np.max(np.ptp(x, axis=0), axis=1) if x.shape[2] else np.zeros(x.shape[1])
    finite = per_image[np.isfinite(per_image)]
    return {
        "per_image": per_image,
        "max": float(finite.max()) if finite.size else math.nan,
        "repeats": int(x.shape[0]),
        "measured": x.shape[0] >= 2,
    }


def noise_budget(
    noise_a: np.ndarray | float,
    noise_b: np.ndarray | float = 0.0,
    fp32_error: np.ndarray | float | None = None,
) -> np.ndarray:
    """Per-image absolute difference between two outputs that needs no explanation beyond noise.

    The run-to-run noises add (triangle inequality: each side may sit anywhere within its own spread).
    ``fp32_error`` optionally adds the error that float32 rounding alone causes on the image: the maximum
    absolute difference between the *reference framework* in float32 and the same model in float64. It
    must not be the error of side A or B themselves against the float64 run: by the triangle inequality
    that sum always covers |a - b| and every difference would pass as noise. NaN terms count as 0.
    """
    total = np.nan_to_num(np.asarray(noise_a, dtype=np.float64), nan=0.0)
    total = total + np.nan_to_num(np.asarray(noise_b, dtype=np.float64), nan=0.0)
    if fp32_error is not None:
        total = total + np.nan_to_num(np.asarray(fp32_error, dtype=np.float64), nan=0.0)
    return total
