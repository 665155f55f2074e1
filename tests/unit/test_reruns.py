"""Reruns in fresh processes flag real nondeterminism, and compare does not call it a finding.

Two real sources: an ONNX model whose RandomUniformLike op has no seed (ONNX Runtime seeds it anew in every
process), and a TVM library whose kernel counts its own calls in a weight it writes to and crashes from the
third call of a process on, so which image crashes depends on how many calls the process made before.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from deltamut.compare.killmatrix import mutant_status
from deltamut.compare.tables import compare_pair
from deltamut.compare.verdicts import Thresholds
from deltamut.runner import RunSettings, load_outputs, run_dataset, save_outputs

ONE_CALL = RunSettings(warmup=0, repeats=1, open_timeout_s=60, image_timeout_s=20, max_restarts=3, retries=0,
                       reruns=2)
COORDS = {"run1": {"framework": "onnxruntime", "opt": "o1"}, "run2": {"framework": "onnxruntime", "opt": "o2"},
          "clean": {"framework": "onnxruntime"}}
FINDINGS = {"numeric_drift", "topk_reorder", "top1_flip"}


def _onnx_model(path, noisy: bool):
    """input (1, 3, 16, 16) -> 10 logits: a fixed linear map, plus, when `noisy`, U[0, 1) per class from an
    unseeded RandomUniformLike, large enough to move the logits and often the top-1 class."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((768, 10)).astype(np.float32) * 0.05
    nodes = [helper.make_node("Flatten", ["input"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["clean" if noisy else "logits"])]
    if noisy:
        nodes += [helper.make_node("RandomUniformLike", ["clean"], ["u"], low=0.0, high=1.0),
                  helper.make_node("Add", ["clean", "u"], ["logits"])]
    graph = helper.make_graph(nodes, "noisy" if noisy else "clean",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return {"kind": "onnxruntime", "onnx": str(path), "threads": 1}


def _stateful_library(path):
    """A real TVM library that writes into one of its own weights (a call counter) and writes far out of
    bounds once that counter reaches 2: its result depends on what the process ran before."""
    import tvm
    from tvm import relax
    from tvm.script import tirx as T

    @T.prim_func
    def kernel(x: T.Buffer((1, 3, 16, 16), "float32"), calls: T.Buffer((1,), "int32"),
               y: T.Buffer((1, 10), "float32")):
        for i in range(10):
            if calls[0] > 1:
                y[0, i * 200000000 + 200000000] = x[0, 0, 0, i]
            else:
                y[0, i] = x[0, 0, 0, i]
        calls[0] = calls[0] + 1

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 3, 16, 16), "float32"))
    with bb.function("main", [x]):
        gv = bb.add_func(kernel, "kernel")
        counter = relax.const(np.zeros(1, "int32"))
        out = bb.emit(relax.call_tir(gv, (x, counter), relax.TensorType((1, 10), "float32")))
        bb.emit_func_output(out)
    tvm.compile(bb.get(), tvm.target.Target({"kind": "llvm"})).export_library(str(path))
    return {"kind": "tvm", "lib": str(path), "target_kind": "llvm"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reruns")
    return _onnx_model(folder / "noisy.onnx", True), _onnx_model(folder / "clean.onnx", False)


def _pair(a, b, a_id="run1", b_id="run2"):
    return compare_pair("m", "mutant", a_id, b_id, a, b, np.full(len(a.ids), -1), COORDS, Thresholds())


def test_unseeded_random_op_is_flagged_by_reruns_and_not_reported(models, small_inputs, tmp_path):
    noisy, clean = models
    # One call per image: nothing inside a process can see the noise, only a rerun in a fresh one.
    run1 = run_dataset(noisy, small_inputs, ONE_CALL, tmp_path / "n1.log")
    assert run1.status.tolist() == ["ok"] * 4
    assert np.all(run1.repeat_spread == 0)
    assert np.all(run1.rerun_spread > 0) and np.all(np.isfinite(run1.rerun_spread))
    assert run1.nondeterministic.all()
    assert run1.meta["reruns"]["runs"] == 2 and run1.meta["reruns"]["nondeterministic"] == 4
    assert not run1.meta["reruns"]["disagreements"] and set(run1.error) == {""}

    det = run_dataset(clean, small_inputs, ONE_CALL, tmp_path / "c.log")
    assert np.all(det.rerun_spread == 0) and not det.nondeterministic.any()

    # A second "variant" of the same flaky model: DeltaNN would report every difference between them.
    run2 = run_dataset(noisy, small_inputs, ONE_CALL, tmp_path / "n2.log")
    rows, summary = _pair(run1, run2)
    assert set(rows["verdict"]) == {"within_noise"} and summary["verdict"] == "within_noise"
    assert summary["nondeterministic_images"] == 4 and rows["nondeterministic"].all()
    assert mutant_status(pd.Series(summary)) == "survived"
    # Without the reruns' evidence the same outputs are a finding: the flag, not luck, keeps it out.
    blind = [dataclasses.replace(r, rerun_spread=None) for r in (run1, run2)]
    rows_blind, summary_blind = _pair(*blind)
    assert set(rows_blind["verdict"]) <= FINDINGS and summary_blind["verdict"] in FINDINGS
    assert summary_blind["nondeterministic_images"] == 0

    # The tolerance is per image and as wide as the measured spread: a flagged image excuses a change
    # within its spread, not one far beyond it, and does not hide a change on a deterministic image.
    shifted = dataclasses.replace(det, logits=det.logits.copy(), rerun_spread=det.rerun_spread.copy())
    shifted.logits[0] += np.float32(0.05)  # within its spread of 0.1
    shifted.logits[1:3] += np.float32(0.5)  # a uniform shift (same ranking), five times the spread, or none
    shifted.rerun_spread[:2] = 0.1
    rows_mixed, summary_mixed = _pair(shifted, det, "run1", "clean")
    assert rows_mixed["verdict"].tolist() == ["within_noise", "numeric_drift", "numeric_drift", "identical"]
    assert summary_mixed["verdict"] == "numeric_drift" and summary_mixed["nondeterministic_images"] == 2

    save_outputs(tmp_path / "o.npz", run1)
    np.testing.assert_array_equal(load_outputs(tmp_path / "o.npz").rerun_spread, run1.rerun_spread)


def test_a_crash_in_one_process_only_is_flagged(tmp_path):
    backend = _stateful_library(tmp_path / "stateful.so")
    x = np.random.default_rng(1).standard_normal((3, 3, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x, ids=np.array(["p", "q", "r"]), labels=np.full(3, -1))
    settings = dataclasses.replace(ONE_CALL, repeats=2)
    out = run_dataset(backend, tmp_path / "in.npz", settings, tmp_path / "run.log")
    # Main run, two calls per image: p makes calls 0 and 1, q crashes on call 2, a new worker runs r.
    # Rerun, one call per image in one worker: p and q succeed, r crashes on call 2.
    assert out.status.tolist() == ["ok", "crash", "ok"]
    assert out.nondeterministic.tolist() == [False, True, True]
    assert out.intermittent.tolist() == [False, True, True]
    assert out.rerun_status.tolist() == [["ok"], ["ok"], ["crash"]]
    # A failure in any run is a failure of this side, never an unbounded spread: r crashed in its rerun.
    assert out.observed_status.tolist() == ["ok", "crash", "crash"]
    assert out.rerun_spread[0] == 0 and np.isnan(out.rerun_spread[1:]).all() and np.isfinite(out.spread).all()
    assert "signal 11" in out.error[1] and "nondeterministic: rerun 1 ended ok" in out.error[1]
    assert out.error[0] == "" and out.error[2].startswith("nondeterministic: rerun 1 ended crash (worker killed")
    assert [(d["image"], d["status"], d["rerun_status"]) for d in out.meta["reruns"]["disagreements"]] == [
        ("q", "crash", "ok"), ("r", "ok", "crash")]
    # The main run's results stand: q's rerun logits and timing are not recorded.
    assert np.isnan(out.logits[1]).all() and np.isnan(out.latency_ms[1]).all()
    assert np.isfinite(out.logits[[0, 2]]).all() and np.all(out.latency_ms[[0, 2]] > 0)
    np.testing.assert_array_equal(out.logits[[0, 2]], x[[0, 2], 0, 0, :10])
    save_outputs(tmp_path / "o.npz", out)
    back = load_outputs(tmp_path / "o.npz")
    assert back.observed_status.tolist() == out.observed_status.tolist()

    # As a baseline, its flaky crash makes r not comparable (not an excuse for any difference there); as the
    # variant, r is a crash of the variant, flagged intermittent.
    flipped = dataclasses.replace(out, logits=out.logits[:, ::-1].copy(), status=np.array(["ok"] * 3),
                                  rerun_status=np.array([["ok"]] * 3), rerun_spread=np.zeros(3))
    rows, summary = _pair(flipped, out, "run1", "run2")
    assert rows["verdict"].tolist() == ["top1_flip", "not_comparable", "not_comparable"]
    assert summary["n_not_comparable"] == 2 and summary["failed_side"] == "b" and summary["verdict"] == "top1_flip"
    rows, summary = _pair(out, flipped, "run1", "run2")
    assert rows["verdict"].tolist() == ["top1_flip", "crash", "crash"]
    assert rows["intermittent_a"].tolist() == [False, True, True] and summary["n_intermittent_a"] == 2


def test_nothing_is_rerun_when_nothing_ran(tmp_path, small_inputs):
    backend = {"kind": "onnxruntime", "onnx": str(tmp_path / "absent.onnx"), "threads": 1}
    out = run_dataset(backend, small_inputs, dataclasses.replace(ONE_CALL, reruns=3), tmp_path / "r.log")
    assert set(out.status) == {"error"}
    assert out.meta["reruns"]["runs"] == 1 and out.meta["reruns"]["images"] == 0
    assert len(out.meta["events"]) == 1 and np.isnan(out.rerun_spread).all()
    with pytest.raises(ValueError, match="reruns"):
        RunSettings(reruns=0)
    assert RunSettings.from_dict({"reruns": 4}).reruns == 4 and RunSettings().reruns == 2


def test_files_without_rerun_spread_still_load(models, small_inputs, tmp_path):
    _, clean = models
    out = run_dataset(clean, small_inputs, dataclasses.replace(ONE_CALL, reruns=1), tmp_path / "r.log")
    assert out.meta["reruns"]["runs"] == 1 and np.isnan(out.rerun_spread).all()
    save_outputs(tmp_path / "new.npz", out)
    with np.load(tmp_path / "new.npz") as z:
        np.savez(tmp_path / "old.npz", **{k: z[k] for k in z.files if k != "rerun_spread"})
    old = load_outputs(tmp_path / "old.npz")
    assert old.rerun_spread.shape == (4,) and np.isnan(old.rerun_spread).all()
    assert not old.nondeterministic.any()
    np.testing.assert_array_equal(old.logits, out.logits)


def test_rerun_workers_open_ahead_and_never_overlap_the_timed_run(models, small_inputs, tmp_path):
    """Rerun workers start with the main one (their imports overlap its imports), are all ready before the
    main run times its first call, and run their images only after the previous run's last image."""
    _, clean = models
    settings = dataclasses.replace(ONE_CALL, warmup=1, repeats=3, reruns=3)
    out = run_dataset(clean, small_inputs, settings, tmp_path / "r.log")
    assert out.status.tolist() == ["ok"] * 4 and np.all(out.rerun_spread == 0)
    main, *reruns = out.meta["timeline"]
    assert len(reruns) == 2
    for earlier, run in zip([main, *reruns], reruns, strict=False):
        assert len(run["ready"]) == 1 and run["ready"][0] <= main["first_image"]
        assert run["first_image"] >= earlier["last_image"]
    # the remote path keeps one worker at a time: a board's RPC server serves one session at once
    from deltamut.runner.run import _start_held

    assert _start_held({"kind": "tvm", "rpc": "127.0.0.1:9"}, small_inputs, settings, settings, None,
                       tmp_path) == [None, None, None]
