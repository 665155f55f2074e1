"""Metrics against values computed by hand on small arrays (each hand computation is in the docstring)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deltamut.compare import metrics as m

LN3 = math.log(3.0)


def logits_pairs():
    """Two finite (N, C) logit arrays of the same small shape."""
    return st.tuples(st.integers(1, 4), st.integers(2, 12)).flatmap(
        lambda shape: st.tuples(
            arrays(np.float64, shape, elements=st.floats(-50, 50, allow_nan=False)),
            arrays(np.float64, shape, elements=st.floats(-50, 50, allow_nan=False)),
        )
    )


FAST = settings(max_examples=40, deadline=None)


# --- softmax, top-k -----------------------------------------------------------------------------------


def test_softmax_hand_values_and_no_overflow():
    """exp(0) : exp(ln 3) = 1 : 3, so the probabilities are 1/4 and 3/4, also shifted by +1000."""
    x = np.array([[0.0, LN3], [1000.0, 1000.0 + LN3]])
    p = m.softmax(x)
    np.testing.assert_allclose(p, [[0.25, 0.75], [0.25, 0.75]], rtol=1e-6)
    assert np.isnan(m.softmax(np.array([[np.nan, 1.0]]))).all()


def test_topk_orders_by_score_and_breaks_ties_by_lower_index():
    """Scores [1, 3, 3, 0]: classes 1 and 2 tie at 3 -> 1 first, then 2, then 0 (score 1), then 3."""
    x = np.array([[1.0, 3.0, 3.0, 0.0]])
    assert m.topk(x, 3).tolist() == [[1, 2, 0]]
    assert m.topk(x, 1).tolist() == [[1]]
    with pytest.raises(ValueError):
        m.topk(x, 0)


def test_top1_agree_and_nan_rows():
    a = np.array([[0.0, 1.0, 0.5], [2.0, 1.0, 0.0], [np.nan, 1.0, 0.0]])
    b = np.array([[0.0, 2.0, 0.5], [0.0, 1.0, 2.0], [0.0, 1.0, 0.0]])
    assert m.top1_agree(a, b).tolist() == [True, False, False]


def test_topk_jaccard_hand_values():
    """Top-3 of a = {4, 3, 2}; of b = {3, 2, 1}: intersection {2, 3} (2), union {1, 2, 3, 4} (4) -> 0.5."""
    a = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    b = np.array([[0.0, 4.0, 3.0, 5.0, -1.0]])
    assert m.topk_jaccard(a, b, k=3)[0] == pytest.approx(0.5)
    assert m.topk_jaccard(a, a, k=3)[0] == 1.0
    # Top-2 of a = {4, 3}, of -a = {0, 1}: disjoint.
    assert m.topk_jaccard(a, -a, k=2)[0] == 0.0
    assert np.isnan(m.topk_jaccard(np.array([[np.nan, 1.0]]), np.array([[0.0, 1.0]]), k=1)[0])


# --- Kendall's tau ------------------------------------------------------------------------------------


def test_kendall_tau_hand_counted():
    """a = [1, 2, 3, 4], b = [1, 3, 2, 4]: of the 6 pairs only (1, 2) swaps -> nc = 5, nd = 1,
    tau = (5 - 1) / 6 = 2/3. Reversing b makes every pair discordant -> -1."""
    a = np.array([[1.0, 2.0, 3.0, 4.0]])
    b = np.array([[1.0, 3.0, 2.0, 4.0]])
    assert m.kendall_tau(a, b)[0] == pytest.approx(2 / 3)
    assert m.kendall_tau(a, a[:, ::-1])[0] == pytest.approx(-1.0)


def test_kendall_tau_b_with_ties():
    """a = [1, 2, 2, 3], b = [1, 2, 3, 4]: the pair (2, 3) is tied in a, the other 5 are concordant.
    tau-b = (nc - nd) / sqrt((n0 - t_a)(n0 - t_b)) = 5 / sqrt((6 - 1)(6 - 0)) = 5 / sqrt(30)."""
    a = np.array([[1.0, 2.0, 2.0, 3.0]])
    b = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert m.kendall_tau(a, b)[0] == pytest.approx(5 / math.sqrt(30))


def test_kendall_tau_compares_scores_not_label_ids():
    """The original tool correlated label-id lists; here the same ranking (softmax keeps order) is 1
    even though the logits differ, and NaN or constant rows have no tau."""
    a = np.array([[0.1, 3.0, -2.0, 1.0], [np.nan, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    b = np.array([[0.2, 9.0, -5.0, 2.0], [0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]])
    tau = m.kendall_tau(a, b)
    assert tau[0] == pytest.approx(1.0)
    assert np.isnan(tau[1]) and np.isnan(tau[2])
    assert m.kendall_tau(m.softmax(a[:1]), b[:1])[0] == pytest.approx(1.0)


# --- RBO ----------------------------------------------------------------------------------------------


def test_rbo_lists_even_hand_example():
    """S = [a, b, c], T = [b, a, d], p = 0.5. Overlaps X_1..3 = 0, 2, 2, agreements A_d = X_d/d =
    0, 1, 2/3. RBO_ext = (1-p) sum_d p^(d-1) A_d + A_3 p^3 = 0.5 (0 + 0.5 + 0.25 * 2/3) + (2/3)/8
    = 1/3 + 1/12 = 5/12."""
    assert m.rbo_lists(["a", "b", "c"], ["b", "a", "d"], p=0.5) == pytest.approx(5 / 12)
    assert m.rbo_lists(["b", "a", "d"], ["a", "b", "c"], p=0.5) == pytest.approx(5 / 12)


def test_rbo_lists_uneven_hand_example():
    """S = [a, c] (s = 2), L = [b, a, d] (l = 3), p = 0.5. X_1 = 0, X_2 = |{a,c} ∩ {b,a}| = 1,
    X_3 = |{a,c} ∩ {b,a,d}| = 1. A_1 = 0, A_2 = 1/2, A_3 = X_3/3 + X_2 (3-2)/(2*3) = 1/3 + 1/6 = 1/2.
    RBO_ext = 0.5 (0 + 0.5 * 1/2 + 0.25 * 1/2) + (1/2) * 0.125 = 0.1875 + 0.0625 = 0.25.
    And S = [a] against L = [a, b]: the seen part of S agrees fully, so the extrapolation gives 1."""
    assert m.rbo_lists(["a", "c"], ["b", "a", "d"], p=0.5) == pytest.approx(0.25)
    assert m.rbo_lists(["b", "a", "d"], ["a", "c"], p=0.5) == pytest.approx(0.25)
    assert m.rbo_lists(["a"], ["a", "b"], p=0.5) == pytest.approx(1.0)


def test_rbo_lists_identical_disjoint_and_errors():
    assert m.rbo_lists([1, 2, 3, 4], [1, 2, 3, 4], p=0.9) == pytest.approx(1.0)
    assert m.rbo_lists([1, 2, 3], [4, 5, 6, 7], p=0.9) == 0.0
    with pytest.raises(ValueError):
        m.rbo_lists([1, 1], [1, 2])
    with pytest.raises(ValueError):
        m.rbo_lists([], [1])
    with pytest.raises(ValueError):
        m.rbo_lists([1], [1], p=1.0)


def test_rbo_rows_hand_values():
    """Two classes ranked [0, 1] and [1, 0]: A_1 = 0, A_2 = 1, RBO_ext = (1-p)(0 + p) + p^2 = p.
    Depth 3 of the logits below gives the rankings [0, 1, 2] and [1, 0, 3] -> 5/12 at p = 0.5 as in the
    even hand example."""
    assert m.rbo(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), p=0.9)[0] == pytest.approx(0.9)
    a = np.array([[3.0, 2.0, 1.0, 0.0, -1.0]])
    b = np.array([[2.0, 3.0, 0.0, 1.0, -1.0]])
    assert m.rbo(a, b, p=0.5, depth=3)[0] == pytest.approx(5 / 12)
    assert np.isnan(m.rbo(np.array([[np.nan, 0.0]]), np.array([[0.0, 1.0]]))[0])


@FAST
@given(logits_pairs())
def test_rbo_properties(pair):
    a, b = pair
    assert np.allclose(m.rbo(a, a), 1.0)
    r = m.rbo(a, b)
    assert np.all((r >= -1e-12) & (r <= 1 + 1e-12))
    np.testing.assert_allclose(r, m.rbo(b, a))
    depth = min(4, a.shape[1])
    expected = [m.rbo_lists(list(x), list(y), 0.9) for x, y in zip(m.ranking(a)[:, :depth],
                                                                     m.ranking(b)[:, :depth], strict=True)]
    np.testing.assert_allclose(m.rbo(a, b, depth=depth), expected)


@FAST
@given(logits_pairs(), st.integers(1, 6))
def test_jaccard_properties(pair, k):
    a, b = pair
    j = m.topk_jaccard(a, b, k)
    assert np.all((j >= 0) & (j <= 1))
    np.testing.assert_array_equal(j, m.topk_jaccard(b, a, k))
    np.testing.assert_array_equal(m.topk_jaccard(a, a, k), 1.0)


# --- errors and distances -----------------------------------------------------------------------------


def test_abs_rel_err_hand_values():
    """|a - b| = [0, 0.5, 1] -> max 1; max|b| = 4 -> relative 0.25. Identical rows -> 0."""
    a = np.array([[1.0, 2.0, -3.0], [1.0, 1.0, 1.0]])
    b = np.array([[1.0, 2.5, -4.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(m.max_abs_err(a, b), [1.0, 0.0])
    np.testing.assert_allclose(m.max_rel_err(a, b), [0.25, 0.0])


def test_float32_one_ulp_is_not_lost():
    """float32 1.0 and the next float32 differ by 2^-23; the comparison must see exactly that."""
    a = np.array([[1.0, 0.0]], dtype=np.float32)
    b = np.array([[np.nextafter(np.float32(1.0), np.float32(2.0)), 0.0]], dtype=np.float32)
    assert m.max_abs_err(a, b)[0] == 2.0**-23


def test_cosine_hand_values():
    """[1,0].[0,1] = 0; [1,1].[1,0] / (sqrt2 * 1) = 1/sqrt2; [1,2] vs [-1,-2] = -1; zero rows by convention."""
    a = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [0.0, 0.0], [0.0, 0.0], [np.inf, 1.0]])
    b = np.array([[0.0, 1.0], [1.0, 0.0], [-1.0, -2.0], [0.0, 0.0], [3.0, 0.0], [1.0, 1.0]])
    c = m.cosine(a, b)
    np.testing.assert_allclose(c[:5], [0.0, 1 / math.sqrt(2), -1.0, 1.0, 0.0])
    assert np.isnan(c[5])


@FAST
@given(arrays(np.float64, (2, 6), elements=st.floats(0.01, 50)))
def test_cosine_of_identical_is_one(x):
    np.testing.assert_allclose(m.cosine(x, x), 1.0)
    np.testing.assert_allclose(m.cosine(x, 3 * x), 1.0)


def test_rmse_hand_value():
    """Errors [0, 0, 0, 2] -> sqrt(4 / 4) = 1."""
    assert m.rmse(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[1.0, 2.0, 3.0, 6.0]]))[0] == pytest.approx(1.0)


def test_manhattan_minkowski_hand_values():
    """Logits [0, ln3] and [ln3, 0] are probabilities [1/4, 3/4] and [3/4, 1/4]: differences 1/2 each.
    L1 = 1, L2 = sqrt(2 * 1/4) = sqrt(1/2), L3 = (2 * 1/8)^(1/3) = (1/4)^(1/3). The original tools
    returned 0 for these."""
    a = np.array([[0.0, LN3]])
    b = np.array([[LN3, 0.0]])
    assert m.manhattan(a, b)[0] == pytest.approx(1.0)
    assert m.minkowski(a, b, p=2)[0] == pytest.approx(math.sqrt(0.5))
    assert m.minkowski(a, b, p=3)[0] == pytest.approx(0.25 ** (1 / 3))
    assert m.manhattan(a, a)[0] == 0.0
    probs = np.array([[0.25, 0.75]])
    assert m.manhattan(probs, probs[:, ::-1], from_logits=False)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        m.minkowski(a, b, p=0.5)


def test_single_image_shapes_and_shape_mismatch():
    a = np.array([[0.0, 1.0, 2.0]], dtype=np.float32)
    for fn in (m.top1_agree, m.topk_jaccard, m.kendall_tau, m.rbo, m.max_abs_err, m.max_rel_err,
               m.cosine, m.rmse, m.manhattan, m.minkowski):
        assert fn(a, a).shape == (1,)
    with pytest.raises(ValueError):
        m.max_abs_err(a, np.zeros((1, 4)))
