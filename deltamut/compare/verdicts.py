"""Graded verdicts: how much an output or a latency changed, in words a report can count.

The original tools had one bit per image (top-1 differs or not). Here each image gets the first matching
grade of a ladder, from "bitwise identical" to "the label flipped", and failures keep the vocabulary of
``deltamut.outcome`` so a crash stays a finding. The thresholds are a frozen object that is saved with the
results, so a stored comparison can be re-judged with other thresholds without re-running anything.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from deltamut.compare.metrics import topk
from deltamut.compare.stats import LatencyComparison
from deltamut.outcome import Status

__all__ = [
    "SEVERITY",
    "LatencyVerdict",
    "Thresholds",
    "Verdict",
    "failed_side",
    "grade_images",
    "grade_latency",
    "grade_pair",
    "severity",
]


def _default(name: str) -> Any:
    """A threshold's default: the schema's (`compare:`), the one place it is written."""
    from deltamut.defaults import defaults

    return defaults("compare")[name]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Tolerances for the verdicts.

    ``atol`` and ``rtol``: how far two logits may differ *beyond the measured noise floor* and still count
    as the same output, elementwise |a - b| <= noise + atol + rtol * |b| (the numpy ``allclose`` form, with
    ``b`` the reference). The defaults (the config schema's, like every other), 1e-5 each, are Polygraphy's:
    about ten float32 ulps on logits of size 1-10, which absorbs a reordered reduction but not a changed
    computation.
    ``topk``: the k of the top-k order check. ``alpha``: significance level of the latency test.
    ``min_rel_change``: a latency change must also be at least this large (0.05: 5%) to be called slower
    or faster; with hundreds of timings tiny, irrelevant shifts are significant.
    """

    atol: float = dataclasses.field(default_factory=lambda: _default("atol"))
    rtol: float = dataclasses.field(default_factory=lambda: _default("rtol"))
    topk: int = dataclasses.field(default_factory=lambda: _default("topk"))
    alpha: float = dataclasses.field(default_factory=lambda: _default("alpha"))
    min_rel_change: float = dataclasses.field(default_factory=lambda: _default("min_rel_change"))

    def __post_init__(self) -> None:
        if self.atol < 0 or self.rtol < 0 or self.min_rel_change < 0:
            raise ValueError("atol, rtol and min_rel_change must be >= 0")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        if self.topk < 1:
            raise ValueError(f"topk must be >= 1, got {self.topk}")

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | None) -> Thresholds:
        """Build from the ``compare`` section of the config; unknown keys are an error (a typo would
        otherwise silently leave a default in force)."""
        config = dict(config or {})
        known = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(f"unknown threshold(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: int(v) if k == "topk" else float(v) for k, v in config.items()})

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


class Verdict(StrEnum):
    """Per-image (and per-pair) output verdicts, declared from least to most severe."""

    # Not a grade of the variant: its baseline failed on this image, so there is nothing to judge it against.
    # Ranked lowest so that any image that could be judged outranks it in a pair's grade.
    NOT_COMPARABLE = "not_comparable"
    IDENTICAL = "identical"  # bitwise equal outputs
    EQUIVALENT = "equivalent"  # mutant structurally equal to its original: not run, equal by construction
    WITHIN_NOISE = "within_noise"  # differs, but within noise floor + atol + rtol*|b|
    NUMERIC_DRIFT = "numeric_drift"  # beyond tolerance, same top-k classes in the same order
    TOPK_REORDER = "topk_reorder"  # same top-1, the top-k order or membership differs
    TOP1_FLIP = "top1_flip"  # the predicted label differs
    SKIPPED = "skipped"  # not attempted because an earlier stage failed: nothing to compare
    NAN = "nan"  # an output holds NaN or inf
    ERROR = "error"  # a Python exception: a deterministic failure
    TIMEOUT = "timeout"  # ran past its time limit (a hang, or far too slow)
    CRASH = "crash"  # the process died (signal, segfault)


# Why this order: differences of the output come first, by how much a user of the classifier would notice
# them (none, rounding, scores, ranking, the answer). Every failure is worse than any wrong answer, from
# "never ran" to the process dying; a pair is as bad as its worst image that could be judged.
SEVERITY: tuple[Verdict, ...] = tuple(Verdict)
_RANK = {v.value: i for i, v in enumerate(SEVERITY)}

_STATUS_VERDICT = {
    Status.CRASH.value: Verdict.CRASH,
    Status.TIMEOUT.value: Verdict.TIMEOUT,
    Status.NAN.value: Verdict.NAN,
    Status.ERROR.value: Verdict.ERROR,
    Status.EQUIVALENT.value: Verdict.EQUIVALENT,
    Status.SKIPPED.value: Verdict.SKIPPED,
}


class LatencyVerdict(StrEnum):
    SAME_SPEED = "same_speed"
    FASTER = "faster"
    SLOWER = "slower"
    UNKNOWN = "unknown"  # no timings on one side (it failed, or its timing did), or the machine was busy
    NOT_TIMED = "not_timed"  # no timing group holds both sides (across devices, ...): no claim either way


def severity(verdict: str) -> int:
    """Position of a verdict in ``SEVERITY`` (higher is worse)."""
    try:
        return _RANK[str(verdict)]
    except KeyError:
        raise ValueError(f"unknown verdict {verdict!r}; known: {list(_RANK)}") from None


def _status_verdicts(status: np.ndarray, n: int, side: str) -> np.ndarray:
    """Map a status column to verdicts ('' where ok); reject anything outside the outcome vocabulary."""
    status = np.asarray(status).astype(str)
    if status.shape != (n,):
        raise ValueError(f"status_{side} must have shape ({n},), got {status.shape}")
    out = np.full(n, "", dtype=object)
    for value in np.unique(status):
        if value == Status.OK.value:
            continue
        if value not in _STATUS_VERDICT:
            raise ValueError(f"unknown status {value!r} in status_{side}")
        out[status == value] = _STATUS_VERDICT[value].value
    return out


def _failed(status: np.ndarray) -> np.ndarray:
    """Images a side did not run to a usable output: every status but ok and equivalent (a mutant that was
    not run because it equals another is not a failure)."""
    status = np.asarray(status).astype(str)
    return (status != Status.OK.value) & (status != Status.EQUIVALENT.value)


def failed_side(status_a: np.ndarray, status_b: np.ndarray) -> np.ndarray:
    """Per image, which side failed: "a", "b", "both" or "" (neither)."""
    fa, fb = _failed(status_a), _failed(status_b)
    return np.select([fa & fb, fa, fb], ["both", "a", "b"], default="").astype(object)


def _bitwise_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype == b.dtype and a.dtype.kind == "f":
        unsigned = np.dtype(f"u{a.dtype.itemsize}")
        return (a.view(unsigned) == b.view(unsigned)).all(axis=1)
    return (a.astype(np.float64) == b.astype(np.float64)).all(axis=1)


def grade_images(
    a: np.ndarray | None,
    b: np.ndarray | None,
    status_a: np.ndarray,
    status_b: np.ndarray,
    noise: np.ndarray | float | None = None,
    thresholds: Thresholds | None = None,
) -> np.ndarray:
    """One verdict per image for side ``a`` against side ``b`` (the reference), as an object array of str.

    The first rule that applies wins:
    1. the baseline ``b`` failed (crash, timeout, nan, error, skipped) -> not_comparable, whatever ``a`` did:
       a variant is judged by what it does that its baseline does not, so it is never credited (or blamed)
       with its baseline's failure;
    2. a status other than "ok" on side ``a`` -> that status's verdict;
    3. an "ok" output holding NaN/inf -> nan;
    4. the same bits -> identical;
    5. |a - b| <= noise + atol + rtol * |b| for every class -> within_noise;
    6. the same top-k classes in the same order -> numeric_drift;
    7. the same top-1 -> topk_reorder;
    8. otherwise -> top1_flip.
    The statuses are what each side was observed to do in any of its runs (``Outputs.observed_status``).
    ``noise`` is the per-image (N,) or scalar tolerance from the noise floor (see ``stats.noise_budget``);
    None or NaN means 0. ``a``/``b`` may be None when that side has no outputs at all (every status on
    that side must then be a failure).
    """
    t = thresholds or Thresholds()
    status_a = np.asarray(status_a)
    n = status_a.shape[0] if status_a.ndim else 0
    verdict_a = _status_verdicts(status_a, n, "a")
    verdict_b = _status_verdicts(status_b, n, "b")

    out = np.full(n, "", dtype=object)
    out[verdict_a != ""] = verdict_a[verdict_a != ""]  # a failed, or was not run (equivalent)
    b_equivalent = (verdict_b == Verdict.EQUIVALENT.value) & (out == "")
    out[b_equivalent] = Verdict.EQUIVALENT.value
    out[_failed(status_b)] = Verdict.NOT_COMPARABLE.value  # rule 1 overrides whatever a did
    failed = out != ""

    ok = ~failed
    if not ok.any():
        return out
    if a is None or b is None:
        raise ValueError("a side without outputs must have a failure status for every image")
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] != n:
        raise ValueError(f"expected outputs of shape ({n}, C) on both sides, got {a.shape} and {b.shape}")

    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    finite = np.isfinite(a64).all(axis=1) & np.isfinite(b64).all(axis=1)
    tol = np.nan_to_num(np.broadcast_to(np.asarray(0.0 if noise is None else noise, np.float64), (n,)))
    with np.errstate(invalid="ignore"):
        close = (np.abs(a64 - b64) <= tol[:, None] + t.atol + t.rtol * np.abs(b64)).all(axis=1)
    k = min(t.topk, a.shape[1])
    ta, tb = topk(a64, k), topk(b64, k)
    same_order = (ta == tb).all(axis=1)
    same_top1 = ta[:, 0] == tb[:, 0]

    # np.select takes the first true condition, which is exactly the ladder above.
    graded = np.select(
        [~finite, _bitwise_equal(a, b), close, same_order, same_top1],
        [Verdict.NAN.value, Verdict.IDENTICAL.value, Verdict.WITHIN_NOISE.value,
         Verdict.NUMERIC_DRIFT.value, Verdict.TOPK_REORDER.value],
        default=Verdict.TOP1_FLIP.value,
    )
    out[ok] = graded[ok]
    return out


def grade_pair(image_verdicts: Iterable[str]) -> str:
    """The worst verdict over a pair's images that could be judged (``SEVERITY`` order): not_comparable only
    when the baseline failed on every image; "skipped" when there are no images."""
    verdicts = list(image_verdicts)
    if not verdicts:
        return Verdict.SKIPPED.value
    return str(max(verdicts, key=severity))  # not_comparable ranks below every judged verdict


def grade_latency(comparison: LatencyComparison, thresholds: Thresholds | None = None) -> str:
    """slower / faster when the shift is both significant (the comparison's p < alpha: for timing rounds the
    bootstrap test of the median round ratio, `compare_rounds`) and large enough.

    "Large enough" is symmetric on a log scale: slower when the median ratio >= 1 + m, faster when it is
    <= 1 / (1 + m), so halving and doubling are equally big changes.
    """
    t = thresholds or Thresholds()
    ratio, pvalue = comparison.ratio, comparison.pvalue
    if math.isnan(ratio):
        return LatencyVerdict.UNKNOWN.value
    if math.isnan(pvalue) or pvalue >= t.alpha:
        return LatencyVerdict.SAME_SPEED.value
    if ratio >= 1.0 + t.min_rel_change:
        return LatencyVerdict.SLOWER.value
    if ratio <= 1.0 / (1.0 + t.min_rel_change):
        return LatencyVerdict.FASTER.value
    return LatencyVerdict.SAME_SPEED.value
