"""Statistics against hand-computed binomial, order-statistic and pair-count values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from deltamut.compare import stats as s


def _paired(b: int, c: int, both_right: int = 3, both_wrong: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Correctness columns with b images only A gets right and c only B gets right."""
    a = [True] * b + [False] * c + [True] * both_right + [False] * both_wrong
    bb = [False] * b + [True] * c + [True] * both_right + [False] * both_wrong
    return np.array(a), np.array(bb)


def test_mcnemar_exact_hand_binomial():
    """b = 1, c = 6: under H0 b ~ Bin(7, 1/2); P(X <= 1) = (1 + 7) / 128, two-sided p = 16/128 = 0.125."""
    r = s.mcnemar(*_paired(1, 6))
    assert (r.b, r.c, r.method) == (1, 6, "exact")
    assert r.pvalue == pytest.approx(0.125)
    swapped = s.mcnemar(*reversed(_paired(1, 6)))
    assert (swapped.b, swapped.c) == (6, 1) and swapped.pvalue == pytest.approx(0.125)


def test_mcnemar_no_discordant_pairs():
    r = s.mcnemar(*_paired(0, 0))
    assert r.pvalue == 1.0 and r.b == r.c == 0


def test_mcnemar_chi_square_with_continuity_correction():
    """b = 30, c = 10 (40 >= 25): statistic (|30 - 10| - 1)^2 / 40 = 361/40; with one degree of freedom
    the survival function is erfc(sqrt(x / 2))."""
    r = s.mcnemar(*_paired(30, 10))
    assert r.method == "chi2_cc"
    assert r.statistic == pytest.approx(361 / 40)
    assert r.pvalue == pytest.approx(math.erfc(math.sqrt(361 / 80)))
    with pytest.raises(ValueError):
        s.mcnemar(np.ones(3, bool), np.ones(4, bool))


def test_median_ci_order_statistics_hand_values():
    """n = 10, B ~ Bin(10, 1/2): P(B <= 1) = 11/1024 <= 0.025 < P(B <= 2) = 56/1024, so the interval is
    [x(2), x(9)]. n = 20: P(B <= 5) = 21700/2^20 = 0.0207 <= 0.025 < P(B <= 6) = 60460/2^20, so
    [x(6), x(15)]. Input order must not matter."""
    rng = np.random.default_rng(1)
    x10 = rng.permutation(np.arange(1.0, 11.0))
    assert tuple(s.median_ci(x10)) == (5.5, 2.0, 9.0)
    x20 = rng.permutation(np.arange(1.0, 21.0))
    assert tuple(s.median_ci(x20)) == (10.5, 6.0, 15.0)


def test_median_ci_small_and_degenerate_samples():
    """Below n = 6 no pair of order statistics reaches 95%: the widest interval (min, max) is returned."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tuple(s.median_ci([3.0, 1.0, 2.0])) == (2.0, 1.0, 3.0)
        assert tuple(s.median_ci([4.0])) == (4.0, 4.0, 4.0)
        assert tuple(s.median_ci([4.0, np.nan, 6.0])) == (5.0, 4.0, 6.0)
        assert all(math.isnan(v) for v in s.median_ci([]))


def test_cliffs_delta_complete_separation_and_exact_p():
    """Every B timing above every A timing -> delta = +1 (reversed: -1). With 3 + 3 timings and no ties the
    exact two-sided Mann-Whitney p is 2 / C(6, 3) = 0.1 (only the two extreme arrangements are as extreme)."""
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    r = s.compare_latency(a, b)
    assert r.effect_size == 1.0
    assert r.pvalue == pytest.approx(0.1)
    assert r.ratio == pytest.approx(5.0 / 2.0)
    assert s.compare_latency(b, a).effect_size == -1.0


def test_cliffs_delta_partial_overlap_hand_value():
    """a = [1, 3], b = [2, 4]: of the 4 pairs, b > a in (2,1), (4,1), (4,3) and b < a in (2,3):
    delta = (3 - 1) / 4 = 0.5; ratio of medians 3 / 2."""
    r = s.compare_latency([1.0, 3.0], [2.0, 4.0])
    assert r.effect_size == pytest.approx(0.5)
    assert r.ratio == pytest.approx(1.5)
    assert (r.n_a, r.n_b) == (2, 2)


def test_identical_and_tiny_samples_emit_no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = s.compare_latency([5.0] * 8, [5.0] * 8)
        assert (same.ratio, same.ci_low, same.ci_high, same.effect_size) == (1.0, 1.0, 1.0, 0.0)
        assert same.pvalue == 1.0
        one = s.compare_latency([5.0], [6.0])
        assert one.ratio == pytest.approx(1.2) and math.isnan(one.ci_low) and one.effect_size == 1.0
        empty = s.compare_latency([], [6.0, 7.0])
        assert math.isnan(empty.ratio) and math.isnan(empty.pvalue) and empty.n_a == 0


def test_latency_ratio_interval_covers_a_real_slowdown_and_is_reproducible():
    """B's timings are A's lognormal timings scaled by 1.3: the interval must contain 1.3 and exclude 1."""
    rng = np.random.default_rng(7)
    a = 10.0 * rng.lognormal(0.0, 0.05, 60)
    b = 1.3 * 10.0 * rng.lognormal(0.0, 0.05, 60)
    r = s.compare_latency(a, b)
    assert r.ci_low < 1.3 < r.ci_high and r.ci_low > 1.0
    assert r.pvalue < 1e-6 and r.effect_size > 0.9
    assert s.compare_latency(a, b) == r


def test_noise_floor_hand_values():
    """Image 0: repeats of class 0 are 1.0, 1.5, 1.25 (spread 0.5), class 1 is constant -> 0.5.
    Image 1: constant -> 0. Image 2 had a NaN repeat -> NaN, left out of the maximum."""
    repeats = np.array(
        [
            [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]],
            [[1.5, 2.0], [3.0, 4.0], [np.nan, 0.0]],
            [[1.25, 2.0], [3.0, 4.0], [0.0, 0.0]],
        ]
    )
    floor = s.noise_floor(repeats)
    np.testing.assert_array_equal(floor["per_image"][:2], [0.5, 0.0])
    assert np.isnan(floor["per_image"][2])
    assert floor["max"] == 0.5 and floor["repeats"] == 3 and floor["measured"] is True
    single = s.noise_floor(repeats[:1])
    assert single["measured"] is False and single["max"] == 0.0
    with pytest.raises(ValueError):
        s.noise_floor(np.zeros((2, 3)))


def test_noise_budget_adds_terms_and_ignores_nan():
    got = s.noise_budget(np.array([0.5, np.nan]), np.array([0.25, 0.25]), fp32_error=1e-3)
    np.testing.assert_allclose(got, [0.751, 0.251])
    np.testing.assert_allclose(s.noise_budget(0.1), 0.1)


def test_rounds_cancel_a_load_drift_that_pooled_timings_call_a_slowdown():
    """Both sides slow down 3x halfway through (the machine got busy) and b is always 1.5x a: the round ratios
    say 1.5 every time; two identical sides drifting alike are the same speed, with no test rejecting."""
    load = np.r_[np.ones(8), 3 * np.ones(8)]
    a = [[2.0 * f, 2.02 * f] for f in load]
    b = [[3.0 * f, 3.03 * f] for f in load]
    r = s.compare_rounds(a, b)
    assert r.ratio == pytest.approx(1.5) and r.ci_low == pytest.approx(1.5) and r.ci_high == pytest.approx(1.5)
    assert r.pvalue < 1e-3 and r.effect_size == 1.0 and r.n_a == r.n_b == 16
    same = s.compare_rounds(a, [list(x) for x in a])
    assert same.ratio == 1.0 and same.pvalue == 1.0 and same.effect_size == 0.0


def test_rounds_use_only_rounds_both_sides_finished():
    r = s.compare_rounds([[1.0]] * 5, [[2.0]] * 3)  # b died after round 3
    assert r.n_a == 3 and r.ratio == 2.0
    assert np.isnan(s.compare_rounds([], []).ratio) and s.compare_rounds([], []).n_a == 0
    assert np.isnan(s.compare_rounds([[1.0]], [[2.0]]).pvalue)  # one round: a ratio, no test
