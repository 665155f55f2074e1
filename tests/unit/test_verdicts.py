"""Every verdict of the ladder, the severity order, and the latency grades."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deltamut.compare.stats import LatencyComparison, compare_latency
from deltamut.compare.verdicts import (
    SEVERITY,
    LatencyVerdict,
    Thresholds,
    Verdict,
    failed_side,
    grade_images,
    grade_latency,
    grade_pair,
    severity,
)
from deltamut.outcome import Status

# Reference row: class 7 best, then 6, 5, ... (ranking 7, 6, 5, 4, 3, 2, 1, 0).
REF = np.arange(8, dtype=np.float32)


def _swap(row: np.ndarray, i: int, j: int) -> np.ndarray:
    out = row.copy()
    out[[i, j]] = out[[j, i]]
    return out


def test_every_output_verdict():
    """One image per rule; b is the reference row, a is changed just enough to reach each grade."""
    ok, rows_a, rows_b, status_a, status_b = "ok", [], [], [], []

    def add(a, b=REF, sa=ok, sb=ok):
        rows_a.append(a)
        rows_b.append(b)
        status_a.append(sa)
        status_b.append(sb)

    add(REF.copy())  # identical
    add(REF + np.float32(4e-6))  # within atol 1e-5
    add(REF + np.float32(0.5))  # every logit moved, ranking kept: numeric drift
    add(_swap(REF, 3, 2))  # ranks 5 and 6 swap: top-5 membership changes, top-1 kept
    add(_swap(REF, 6, 5))  # ranks 2 and 3 swap inside the top 5
    add(_swap(REF, 7, 6))  # the two best classes swap: top-1 flips
    add(np.where(REF == 0, np.float32(np.nan), REF))  # status ok but a NaN logit
    add(REF, sa="crash")
    add(REF, sa="timeout")
    add(REF, sa="error")
    add(REF, sa="nan")
    add(REF, sa="equivalent")
    add(REF, sa="skipped")
    add(REF, sb="timeout")  # the baseline failed: nothing to judge a against
    add(REF, sa="timeout", sb="crash")  # both failed: a is not blamed for the baseline's failure either

    got = grade_images(np.array(rows_a), np.array(rows_b), np.array(status_a), np.array(status_b))
    assert got.tolist() == [
        "identical", "within_noise", "numeric_drift", "topk_reorder", "topk_reorder", "top1_flip",
        "nan", "crash", "timeout", "error", "nan", "equivalent", "skipped", "not_comparable", "not_comparable",
    ]
    assert set(got) == {v.value for v in Verdict}
    # the NaN-logit row ran on both sides; equivalent is not a failure
    assert failed_side(np.array(status_a), np.array(status_b)).tolist()[-9:] == \
        ["", "a", "a", "a", "a", "", "a", "b", "both"]


def test_a_failed_baseline_makes_every_variant_not_comparable():
    """The original timed out on image 1 and crashed on image 2: a mutant that flips image 0 is judged on image
    0 alone; a mutant that also crashes on image 2 is not blamed for it."""
    b = np.stack([REF, REF, REF])
    flip = np.stack([_swap(REF, 7, 6), REF, REF])
    sb = np.array(["ok", "timeout", "crash"])
    got = grade_images(flip, b, np.array(["ok", "ok", "crash"]), sb)
    assert got.tolist() == ["top1_flip", "not_comparable", "not_comparable"]
    assert grade_pair(got) == "top1_flip"
    same = grade_images(b.copy(), b, np.array(["ok", "ok", "ok"]), sb)
    assert grade_pair(same) == "identical"
    assert grade_pair(grade_images(None, None, np.array(["skipped"] * 3), np.array(["error"] * 3))) == \
        "not_comparable"


def test_noise_floor_widens_within_noise():
    """A uniform shift of 1e-3 is drift against atol 1e-5, but within a measured noise of 1e-3."""
    a = np.array([REF + 1e-3], dtype=np.float64)
    b = np.array([REF], dtype=np.float64)
    status = np.array(["ok"])
    assert grade_images(a, b, status, status)[0] == "numeric_drift"
    assert grade_images(a, b, status, status, noise=np.array([1e-3]))[0] == "within_noise"
    assert grade_images(a, b, status, status, noise=np.array([np.nan]))[0] == "numeric_drift"


def test_rtol_scales_with_the_reference_and_signed_zero_is_not_identical():
    """|b| = 1000, diff 5e-3 <= 1e-5 + 1e-5 * 1000; -0.0 and 0.0 differ in bits but not in value."""
    status = np.array(["ok", "ok"])
    a = np.array([[1000.005, 0.0], [0.0, -0.0]])
    b = np.array([[1000.0, 0.0], [0.0, 0.0]])
    assert grade_images(a, b, status, status).tolist() == ["within_noise", "within_noise"]
    tight = Thresholds(atol=0.0, rtol=0.0)
    assert grade_images(a, b, status, status, thresholds=tight).tolist() == ["numeric_drift", "within_noise"]


def test_missing_outputs_and_bad_input():
    failed = np.array(["crash", "crash"])
    ok = np.array(["ok", "ok"])
    assert grade_images(None, np.zeros((2, 3)), failed, ok).tolist() == ["crash", "crash"]
    with pytest.raises(ValueError):
        grade_images(None, np.zeros((2, 3)), ok, ok)
    with pytest.raises(ValueError):
        grade_images(np.zeros((2, 3)), np.zeros((2, 3)), np.array(["ok", "exploded"]), ok)
    with pytest.raises(ValueError):
        grade_images(np.zeros((2, 3)), np.zeros((2, 4)), ok, ok)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float32, (3, 6), elements=st.floats(-20, 20, width=32)))
def test_same_output_is_identical(x):
    status = np.array(["ok"] * 3)
    assert set(grade_images(x, x.copy(), status, status)) == {"identical"}


def test_severity_order_and_pair_grade():
    assert severity("not_comparable") == 0 and severity("identical") == 1
    assert all(severity(f) > severity("top1_flip") for f in ("skipped", "nan", "error", "timeout", "crash"))
    assert severity("crash") == len(SEVERITY) - 1
    assert grade_pair(["identical", "topk_reorder", "within_noise"]) == "topk_reorder"
    assert grade_pair(["top1_flip", "crash", "identical"]) == "crash"
    assert grade_pair(np.array(["within_noise"] * 3, dtype=object)) == "within_noise"
    assert grade_pair([]) == "skipped"
    assert grade_pair(["not_comparable", "within_noise"]) == "within_noise"
    with pytest.raises(ValueError):
        grade_pair(["identical", "mostly_fine"])


def test_every_status_has_a_verdict():
    for status in Status:
        if status is not Status.OK:
            got = grade_images(None, None, np.array([status.value]), np.array(["ok"]))
            assert got[0] == status.value


def _latency(ratio: float, pvalue: float) -> LatencyComparison:
    return LatencyComparison(10.0, 10.0 * ratio, ratio, ratio, ratio, pvalue, 0.0, 30, 30)


def test_grade_latency_thresholds():
    assert grade_latency(_latency(1.5, 1e-4)) == LatencyVerdict.SLOWER
    assert grade_latency(_latency(1 / 1.5, 1e-4)) == LatencyVerdict.FASTER
    assert grade_latency(_latency(1.03, 1e-9)) == LatencyVerdict.SAME_SPEED  # significant but < 5%
    assert grade_latency(_latency(0.96, 1e-9)) == LatencyVerdict.SAME_SPEED  # 1/1.05 = 0.952
    assert grade_latency(_latency(2.0, 0.2)) == LatencyVerdict.SAME_SPEED  # large but not significant
    assert grade_latency(_latency(math.nan, math.nan)) == LatencyVerdict.UNKNOWN
    assert grade_latency(_latency(1.03, 1e-9), Thresholds(min_rel_change=0.01)) == LatencyVerdict.SLOWER


def test_grade_latency_on_real_samples():
    rng = np.random.default_rng(3)
    a = 10.0 * rng.lognormal(0.0, 0.05, 40)
    assert grade_latency(compare_latency(a, 1.4 * a[::-1])) == "slower"
    assert grade_latency(compare_latency(a, a / 1.4)) == "faster"
    assert grade_latency(compare_latency(a, a.copy())) == "same_speed"
    assert grade_latency(compare_latency([], a)) == "unknown"


def test_thresholds_from_dict():
    t = Thresholds.from_dict({"atol": "1e-4", "topk": 3, "alpha": 0.01})
    assert (t.atol, t.rtol, t.topk, t.alpha) == (1e-4, 1e-5, 3, 0.01)
    assert Thresholds.from_dict(t.to_dict()) == t
    assert Thresholds.from_dict(None) == Thresholds()
    with pytest.raises(ValueError, match="atoll"):
        Thresholds.from_dict({"atoll": 1e-4})
    with pytest.raises(ValueError):
        Thresholds(alpha=1.5)
    with pytest.raises(AttributeError):
        t.atol = 1.0  # frozen: saved results must keep the thresholds they were graded with
