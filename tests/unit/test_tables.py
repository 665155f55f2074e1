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
    # timed together: every round, a's calls take twice b's
    timing = {"group": "main-cpu", "a": {"status": "ok", "rounds": [[2.0, 2.1]] * 6},
              "b": {"status": "ok", "rounds": [[1.0, 1.05]] * 6}}
    rows, summary = compare_pair("m", "compiler", "a", "b", a, b, np.array([0, 0, -1]), COORDS, Thresholds(topk=2),
                                 timing=timing)
    assert rows["verdict"].tolist() == ["identical", "top1_flip", "crash"]
    assert rows["top1_agree"].tolist() == [True, False, False]
    assert summary["n_compared"] == 2 and summary["top1_disagreement_pct"] == 50.0
    assert summary["accuracy_a"] == 0.5 and summary["accuracy_b"] == 1.0  # 2 labelled images
    assert summary["max_abs_err"] == 2.0 and summary["verdict"] == "crash"
    assert summary["median_latency_a_ms"] == 2.05 and summary["median_latency_b_ms"] == 1.025
    assert summary["latency_ratio"] == pytest.approx(2.0) and summary["latency_verdict"] == "slower"
    assert summary["latency_group"] == "main-cpu" and summary["latency_rounds"] == 6
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


def _kill_rows(cases, original, stages=None):
    """The per-pair rows of mutants (name -> Outputs) against `original`, as compare writes them."""
    import pandas as pd

    rows = []
    for name, a in cases.items():
        a.meta["failed_stage"] = (stages or {}).get(name, "")
        coords = {**COORDS, "b": COORDS["a"], name: {"framework": "tvm", "opt": "o", "mutant": name, "device": "cpu"}}
        rows.append(compare_pair("m", "mutant", name, "b", a, original, np.array([-1, -1]), coords, Thresholds())[1])
    frame = pd.DataFrame(rows)
    return frame.fillna({c: 0 for c in frame.columns if c.startswith("n_")})


def test_kill_matrix_statuses_and_scores():
    b = outputs([[3, 2, 1], [3, 2, 1]])
    nan2 = np.full((2, 3), np.nan)
    cases = {"flip": outputs([[1, 2, 3], [3, 2, 1]]), "same": outputs([[3, 2, 1], [3, 2, 1]]),
             "dead": outputs(nan2, status=["crash", "timeout"]),
             "eq": outputs(np.zeros((2, 0)), status=["equivalent", "equivalent"]),
             "twin": outputs(np.zeros((2, 0)), status=["equivalent", "equivalent"]),
             "broken_tool": outputs(nan2, status=["error", "error"]),
             "unbuildable": outputs(nan2, status=["error", "error"])}
    per_pair = _kill_rows(cases, b, stages={"broken_tool": "mutate", "unbuildable": "deploy", "dead": "run"})
    info = {("o", k): {"operator": "op", "category": "C"} for k in cases}
    info[("o", "eq")]["equivalent_to"] = "original"
    info[("o", "twin")].update(duplicate_of="flip", duplicate_by="ir")
    matrix = kill_matrix(per_pair, info).set_index("mutant")
    assert matrix["status"].to_dict() == {"flip": "killed", "same": "survived", "dead": "crashed", "eq": "equivalent",
                                          "twin": "duplicate", "broken_tool": "tool_error", "unbuildable": "stillborn"}
    # what a mutant is equivalent to (duplicates) is only said of the mutants that are
    assert matrix["equivalent_to"].fillna("").to_dict()["eq"] == "original"
    assert matrix["duplicate_of"].dropna().to_dict() == {"twin": "flip"}
    scores = mutation_scores(matrix.reset_index())
    by_category = scores[scores.by == "category"].iloc[0]
    statuses = ["killed", "crashed", "survived", "equivalent", "duplicate", "tool_error", "stillborn"]
    assert by_category[statuses].tolist() == [1] * len(statuses)
    assert by_category["score"] == pytest.approx(2 / 3)  # (killed + crashed) / (killed + crashed + survived)


def test_a_mutant_is_not_credited_with_its_originals_failures():
    """The original timed out on image 1: a mutant that differs nowhere else survives (it is not killed by the
    original's timeout); one that also fails there is not blamed either. An original that failed on every image
    (it did not compile under this optimisation) makes every mutant not_comparable: never crashed or killed."""
    flaky = outputs([[3, 2, 1], [np.nan] * 3], status=["ok", "timeout"])
    cases = {"same": outputs([[3, 2, 1], [3, 2, 1]]), "also_times_out": outputs([[3, 2, 1], [np.nan] * 3],
                                                                                status=["ok", "timeout"]),
             "flip_elsewhere": outputs([[1, 2, 3], [3, 2, 1]])}
    matrix = kill_matrix(_kill_rows(cases, flaky), {}).set_index("mutant")
    assert matrix["status"].to_dict() == {"same": "survived", "also_times_out": "survived", "flip_elsewhere": "killed"}
    assert (matrix["n_not_comparable"] == 1).all()

    never = outputs(np.zeros((2, 0)), status=["error", "error"])
    cases = {"crashes": outputs(np.full((2, 3), np.nan), status=["crash", "crash"]), "same": outputs([[3, 2, 1]] * 2),
             "skipped": outputs(np.zeros((2, 0)), status=["skipped", "skipped"])}
    matrix = kill_matrix(_kill_rows(cases, never), {}).set_index("mutant")
    assert set(matrix["status"]) == {"not_comparable"}
    scores = mutation_scores(matrix.reset_index())
    assert scores["score"].isna().all() and (scores.loc[scores.by == "category", "not_comparable"] == 3).all()


def test_mutants_with_the_same_outputs_within_noise_count_once():
    """Two mutants whose logits differ by less than their own rerun jitter are one mutation in effect."""
    from deltamut.compare.duplicates import output_twins

    original = outputs([[3, 2, 1], [3, 2, 1]])
    a = outputs([[1, 2, 3], [3, 2, 1]])
    b = outputs([[1.05, 2, 3], [3, 2, 1]])
    b.rerun_spread = np.array([0.1, 0.0])  # b's reruns moved its logits by 0.1 on image 0
    c = outputs([[1.05, 2, 3], [3, 2, 1]])  # the same change as b, but deterministic: 0.05 is a real difference
    cases = {"a_lt": a, "b_le": b, "c_other": c}
    twins = output_twins([(("o", "cpu"), [(k, k) for k in cases])], cases.__getitem__, Thresholds())
    assert twins == {("o", "cpu", "b_le"): "a_lt"}
    matrix = kill_matrix(_kill_rows(cases, original), {}, twins).set_index("mutant")
    assert matrix["status"].tolist() == ["killed"] * 3
    assert matrix["duplicate_of"].dropna().to_dict() == {"b_le": "a_lt"}
    assert matrix.loc["b_le", "duplicate_by"] == "outputs"
    by_category = mutation_scores(matrix.reset_index()).query("by == 'category'").iloc[0]
    assert by_category[["killed", "duplicate", "score"]].tolist() == [2, 1, 1.0]


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


def test_a_pair_no_group_timed_gets_no_latency_verdict_and_says_why():
    """Per-image latencies of separate infer jobs are not evidence: without a timing group, no verdict."""
    out = outputs([[3, 2, 1]], latency=[[1.0, 1.0, 1.0]])
    slow = outputs([[3, 2, 1]], latency=[[5.0, 5.0, 5.0]])
    coords = {"a": {**COORDS["a"], "device": "arm"}, "b": COORDS["a"]}
    summary = compare_pair("m", "device", "a", "b", slow, out, np.array([-1]), coords, Thresholds(),
                           timing={"untimed": "not timed: on different devices (arm, cpu)"})[1]
    assert summary["latency_verdict"] == "not_timed" and np.isnan(summary["latency_ratio"])
    assert summary["latency_caveat"] == "not timed: on different devices (arm, cpu)"
    failed = {"group": "main-cpu", "failed": "not timed: a: crash (worker exited)",
              "a": {"status": "crash", "rounds": []}, "b": {"status": "ok", "rounds": [[1.0]] * 5}}
    summary = compare_pair("m", "compiler", "a", "b", slow, out, np.array([-1]), COORDS, Thresholds(),
                           timing=failed)[1]
    assert summary["latency_verdict"] == "unknown" and summary["latency_caveat"].startswith("not timed: a: crash")


def test_a_pair_timed_on_a_busy_machine_gets_no_latency_verdict_and_says_so():
    """Twice as slow in the rounds that were timed with the cores free, but those are 2 of 6: no claim."""
    out, slow = outputs([[3, 2, 1]]), outputs([[3, 2, 1]])
    busy = [True, True, False, True, False, True]
    timing = {"group": "main-cpu", "settings": {"min_undisturbed_share": 0.5},
              "a": {"status": "ok", "rounds": [[2.0]] * 6, "disturbed": busy},
              "b": {"status": "ok", "rounds": [[1.0]] * 6, "disturbed": [False] * 6}}
    summary = compare_pair("m", "compiler", "a", "b", slow, out, np.array([-1]), COORDS, Thresholds(),
                           timing=timing)[1]
    assert summary["latency_verdict"] == "unknown" and summary["latency_rounds"] == 2
    assert summary["latency_caveat"].startswith("machine busy: only 2 of 6 rounds")


def test_latency_verdict_says_when_schedules_differ():
    """A mutant whose kernel the CPU rules could not schedule is slower because of that, not of the mutation."""
    def built(fallbacks, rule="rules"):
        out = outputs([[3, 2, 1]])
        out.meta["deploy"] = {"schedule": {"rule": rule, "kernels": 3, "fallbacks": fallbacks}}
        return out

    clean, odd = built({}), built({"fused_conv2d_add": "more than one reduction block"})
    coords = {**COORDS, "b": COORDS["a"]}
    timed = {"group": "g", "a": {"status": "ok", "rounds": [[1.0]] * 5}, "b": {"status": "ok", "rounds": [[1.0]] * 5}}
    summary = compare_pair("m", "mutant", "a", "b", odd, clean, np.array([-1]), coords, Thresholds(), timing=timed)[1]
    assert summary["latency_caveat"] == "schedules differ: a left 1 kernel(s) unscheduled (fused_conv2d_add)"
    assert summary["schedule_fallbacks_a"] == "fused_conv2d_add" and summary["schedule_fallbacks_b"] == ""
    same = compare_pair("m", "mutant", "a", "b", built({}), clean, np.array([-1]), coords, Thresholds(),
                        timing=timed)[1]
    assert same["latency_caveat"] == ""
    plain = compare_pair("m", "optimisation", "a", "b", built({}, "none"), clean, np.array([-1]), coords,
                         Thresholds(), timing=timed)[1]
    assert plain["latency_caveat"] == "schedules differ: none vs rules"


def test_a_mutant_across_devices_is_judged_beyond_the_originals_own_difference():
    """The original moves by 0.01 between the two devices; a mutant that moves by 0.005 diverges no more than
    the original does, one that moves by 0.5 (and flips a label) diverges beyond it: that is the finding."""
    import pandas as pd

    from deltamut.compare.crossdevice import device_discrepancy
    from deltamut.compare.tables import _cross_noise

    base = [[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]]
    orig_x86, orig_arm = outputs(base), outputs([[3.01, 2.0, 1.0], [3.0, 2.0, 1.0]])
    noise = _cross_noise(orig_arm, orig_x86)
    assert noise.tolist() == pytest.approx([0.01, 0.0])
    coords = {v: {"framework": "tvm", "opt": "o", "mutant": m, "device": d}
              for v, m, d in [("o/x86", "original", "x86"), ("o/arm", "original", "arm"), ("s/x86", "steady", "x86"),
                              ("s/arm", "steady", "arm"), ("u/x86", "ub", "x86"), ("u/arm", "ub", "arm")]}
    rows = [compare_pair("m", "device", "o/arm", "o/x86", orig_arm, orig_x86, np.array([-1, -1]), coords,
                         Thresholds())[1]]
    for name, shift in (("s", 0.005), ("u", 0.5)):
        x86 = outputs([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
        arm = outputs([[1.0, 2.0 + shift, 3.0 - shift], [3.0, 2.0, 1.0]])
        summary = compare_pair("m", "mutant_device", f"{name}/arm", f"{name}/x86", arm, x86, np.array([-1, -1]),
                               coords, Thresholds(), baseline_noise=noise)[1]
        rows.append(summary)
    per_pair = pd.DataFrame(rows)
    assert per_pair.set_index("a").loc[["s/arm", "u/arm"], "verdict"].tolist() == ["within_noise", "top1_flip"]
    info = {("o", "steady"): {"operator": "op", "category": "C"}, ("o", "ub"): {"operator": "op", "category": "C"}}
    table = device_discrepancy(per_pair, info).iloc[0]
    assert (table["mutants"], table["comparable"], table["diverging"]) == (2, 2, 1)
    assert table["mutants_diverging"] == "ub" and table["original_max_abs_err"] == pytest.approx(0.01)


def test_tables_read_in_the_models_class_names_with_the_most_frequent_flip():
    """Three images, classes cat/dog/fox: a mutant flips two cats to fox and one dog to cat."""
    import pandas as pd

    from deltamut.compare.tables import _named, _top_flips

    b = outputs([[3, 2, 1], [3, 2, 1], [1, 3, 2]])
    a = outputs([[1, 2, 3], [1, 2, 3], [3, 1, 2]])
    rows, summary = compare_pair("m", "mutant", "a", "b", a, b, np.array([0, -1, 1]), COORDS, Thresholds())
    assert _top_flips(rows, pd.DataFrame([summary])) == ["0 → 2 ×2"]  # no names: the class ids, original first
    named = _named(rows, ["cat", "dog", "fox"])  # adds the name columns to the table it is given
    assert named["label_name"].tolist() == ["cat", "", "dog"]
    assert (named["class_a"].tolist(), named["class_b"].tolist()) == (["fox", "fox", "cat"], ["cat", "cat", "dog"])
    assert _top_flips(named, pd.DataFrame([summary])) == ["cat → fox ×2"]
