"""Per-pair tables on hand-made outputs whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from deltamut.compare.killmatrix import kill_matrix, mutation_scores
from deltamut.compare.tables import compare_pair
from deltamut.compare.verdicts import Thresholds
from deltamut.runner.outputs import Outputs

COORDS = {"a": {"framework": "tvm", "opt": "o", "mutant": "m", "device": "cpu"}, "b": {"framework": "torch"}}


def outputs(logits, status=None, latency=None, spread=None):
    logits = np.asarray(logits, dtype=np.float32)
    n = logits.shape[0]
    return Outputs(ids=np.array([f"i{k}" for k in range(n)]), logits=logits,
                   latency_ms=np.asarray(latency if latency is not None else np.ones((n, 3))),
                   status=np.array(status or ["ok"] * n), error=np.array([""] * n),
                   repeat_spread=np.asarray(spread if spread is not None else np.zeros(n)),
                   meta={"versions": {"apache-tvm": "0.27.0.post1"}})


def test_known_pair():
    # image 0: identical; image 1: top-1 flips (class 0 -> class 2); image 2: crashed on side a.
    b = outputs([[3, 2, 1, 0], [3, 2, 1, 0], [3, 2, 1, 0]])
    a = outputs([[3, 2, 1, 0], [1, 2, 3, 0], [np.nan] * 4], status=["ok", "ok", "crash"],
                latency=[[2, 2, 2], [2, 2, 2], [np.nan] * 3])
    rows, summary = compare_pair("m", "compiler", "a", "b", a, b, np.array([0, 0, -1]), COORDS, Thresholds(topk=2))
    assert rows["verdict"].tolist() == ["identical", "top1_flip", "crash"]
    assert rows["top1_agree"].tolist() == [True, False, False]
    assert summary["n_compared"] == 2 and summary["top1_disagreement_pct"] == 50.0
    assert summary["accuracy_a"] == 0.5 and summary["accuracy_b"] == 1.0  # 2 labelled images
    assert summary["max_abs_err"] == 2.0 and summary["verdict"] == "crash"
    assert summary["median_latency_a_ms"] == 2.0 and summary["median_latency_b_ms"] == 1.0
    assert summary["latency_ratio"] == 2.0 and summary["latency_verdict"] == "slower"  # a takes twice as long
    assert rows["top2_jaccard"].iloc[1] == pytest.approx(1 / 3)  # {0,1} vs {2,1}
    assert summary["tvm_a"] == "0.27.0.post1"


def test_noise_from_repeats_widens_the_tolerance():
    b = outputs([[3.0, 2.0, 1.0]])
    a = outputs([[3.01, 2.0, 1.0]])
    strict = compare_pair("m", "compiler", "a", "b", a, b, np.array([-1]), COORDS, Thresholds())[0]
    noisy = compare_pair("m", "compiler", "a", "b", outputs([[3.01, 2.0, 1.0]], spread=[0.02]), b, np.array([-1]),
                         COORDS, Thresholds())[0]
    assert strict["verdict"].item() == "numeric_drift"
    assert noisy["verdict"].item() == "within_noise" and noisy["nondeterministic"].item()


def test_kill_matrix_statuses_and_scores():
    b = outputs([[3, 2, 1], [3, 2, 1]])
    cases = {"flip": outputs([[1, 2, 3], [3, 2, 1]]), "same": outputs([[3, 2, 1], [3, 2, 1]]),
             "dead": outputs(np.full((2, 3), np.nan), status=["crash", "timeout"]),
             "eq": outputs(np.zeros((2, 0)), status=["equivalent", "equivalent"])}
    rows = []
    for name, a in cases.items():
        coords = {**COORDS, name: {"framework": "tvm", "opt": "o", "mutant": name, "device": "cpu"}}
        rows.append(compare_pair("m", "mutant", name, "b", a, b, np.array([-1, -1]), coords, Thresholds())[1])
    import pandas as pd

    per_pair = pd.DataFrame(rows).fillna({c: 0 for c in pd.DataFrame(rows).columns if c.startswith("n_")})
    info = {("o", k): {"operator": "op", "category": "C", "equivalent_to": "mutant flip"} for k in cases}
    matrix = kill_matrix(per_pair, info).set_index("mutant")
    assert matrix["status"].to_dict() == {"flip": "killed", "same": "survived", "dead": "crashed", "eq": "equivalent"}
    # what a mutant is equivalent to is only said of the mutants that are equivalent
    assert matrix["equivalent_to"].fillna("").to_dict() == {"flip": "", "same": "", "dead": "", "eq": "mutant flip"}
    scores = mutation_scores(matrix.reset_index())
    by_category = scores[scores.by == "category"].iloc[0]
    assert by_category["score"] == pytest.approx(2 / 3)  # (killed + crashed) / (4 - 1 equivalent)


def test_float64_reference_gives_rmse_and_widens_tolerance_by_the_float32_floor():
    b = outputs([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    a = outputs([[3.0005, 2.0, 1.0], [3.01, 2.0, 1.0]])
    exact = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    strict, _ = compare_pair("m", "compiler", "a", "b", a, b, np.array([-1, -1]), COORDS, Thresholds())
    assert strict["verdict"].tolist() == ["numeric_drift", "numeric_drift"]
    # float32 alone moves these logits by up to 1e-3: 5e-4 is explained by it, 1e-2 is not
    rows, summary = compare_pair("m", "compiler", "a", "b", a, b, np.array([-1, -1]), COORDS, Thresholds(),
                                 float64=exact, floor=np.array([1e-3, 1e-3]))
    assert rows["verdict"].tolist() == ["within_noise", "numeric_drift"]
    assert rows["rmse_vs_float64_a"].to_numpy() == pytest.approx([5e-4 / np.sqrt(3), 1e-2 / np.sqrt(3)], rel=1e-3)
    assert rows["rmse_vs_float64_b"].tolist() == [0.0, 0.0]
    assert summary["rmse_vs_float64_a"] == pytest.approx((5e-4 + 1e-2) / 2 / np.sqrt(3), rel=1e-3)
