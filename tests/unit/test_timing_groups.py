"""Which variants are timed together (deltamut.timing.groups), and what a pair reads from the records."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltamut.config import load_study
from deltamut.timing.groups import group_of, member_files, timing_groups, timing_members
from deltamut.timing.records import pair_timing
from deltamut.timing.rounds import TimingSettings
from deltamut.timing.worker import settled


def _study(tmp_path, **extra):
    config = {
        "models": {"m": {"source": "zoo", "arch": "mobilenet_v2", "mutants": ["mnn11_relu_to_sigmoid",
                                                                             "mnn21_gt_to_lt", "input_gaussian_noise"],
                         "mutate_under": ["default"]}},
        "optimisations": {"basic": {"fuse": False}, "default": {}},
        "devices": {"cpu": {"target": "x86_64"}, "board": {"target": "arm", "rpc": {"host": "h", "port": 1}},
                    "cpu2": {"target": "x86_64"}},
        "targets": {"x86_64": {"kind": "llvm"}, "arm": {"kind": "llvm", "mtriple": "aarch64-linux-gnu"}},
        "conversions": {"legacy-opset13": {"exporter": "legacy", "opset": 13, "compile_under": ["basic"]}},
        "timing": {"mutants_per_group": 1},
        "mutation_catalog": str(Path(__file__).resolve().parents[2] / "config" / "mutations.yaml"),
        **extra,
    }
    return load_study(config, base=tmp_path)


def test_groups_hold_each_pair_that_one_machine_can_interleave(tmp_path):
    study = _study(tmp_path)
    groups = timing_groups(study, "m")
    assert set(groups) == {"main-cpu", "main-cpu2", "mutants-default-cpu-0", "mutants-default-cpu-1",
                           "mutants-default-cpu2-0", "mutants-default-cpu2-1"}  # no group on the RPC board
    # the frameworks beside each host CPU device's builds, the conversion's ONNX Runtime and TVM too
    assert groups["main-cpu"] == ["torch", "onnxruntime", "onnxruntime@legacy-opset13", "tvm/basic/original/cpu",
                                  "tvm/default/original/cpu", "tvm@legacy-opset13/basic/original/cpu"]
    assert groups["main-cpu2"][3:] == ["tvm/basic/original/cpu2", "tvm/default/original/cpu2",
                                   "tvm@legacy-opset13/basic/original/cpu2"]
    # one mutant a group beside its original (mutants_per_group: 1); the input-level mutant is not timed
    assert groups["mutants-default-cpu-1"] == ["tvm/default/original/cpu", "tvm/default/mnn21_gt_to_lt/cpu"]
    for pair in study.pairs("m"):
        found = group_of(groups, pair["a"], pair["b"])
        timed = pair["kind"] in ("framework", "compiler", "mutant", "optimisation", "conversion") \
            and "board" not in pair["a"] and "input_gaussian" not in pair["a"]
        assert (found is not None) == timed, pair


def test_members_name_the_files_they_run(tmp_path):
    study = _study(tmp_path)
    members = timing_members(study, "m", "main-cpu")
    assert members["torch"] == {"framework": "torch"}
    assert members["onnxruntime@legacy-opset13"]["onnx"] == "results/m@legacy-opset13/export/model.onnx"
    tvm = members["tvm@legacy-opset13/basic/original/cpu"]
    assert tvm["lib"] == "results/m@legacy-opset13/tvm/basic/original/deploy/x86_64/lib.so"
    assert tvm["info"].endswith("deploy/x86_64/deploy.json") and tvm["device"] == "cpu"
    assert len(member_files(members)) == 2 + 2 * 3


def test_a_pair_reads_its_group_or_says_why_it_has_none(tmp_path):
    study = _study(tmp_path)
    variants = study.variants("m")
    crashed = {"status": "crash", "error": "signal 11", "rounds": []}
    records = [{"group": "main-cpu", "members": {"torch": {"status": "ok", "rounds": [[1.0]]}, "onnxruntime": crashed}}]
    assert pair_timing(records, variants, "torch", "onnxruntime")["failed"] == \
        "not timed: onnxruntime: crash (signal 11)"
    across = pair_timing(records, variants, "tvm/default/original/board", "tvm/default/original/cpu")
    assert across == {"untimed": "not timed: on different devices (board, cpu), which cannot be interleaved"}
    noise = pair_timing(records, variants, "tvm/default/input_gaussian_noise/cpu", "tvm/default/original/cpu")
    assert noise["untimed"] == "not timed: an input-level mutant runs the original's library"


def test_warmup_ends_when_the_last_calls_agree():
    assert not settled([50.0, 9.0, 5.1], 3, 0.1)  # still settling
    assert settled([50.0, 9.0, 5.1, 5.0, 5.2], 3, 0.1)
    assert not settled([5.0, 5.2], 3, 0.1)  # too few


@pytest.mark.parametrize(("call_ms", "calls"), [(0.5, 20), (5.0, 20), (40.0, 4), (99.0, 3), (100.0, 1), (500.0, 1),
                                                 (float("nan"), 2)])
def test_a_block_fits_its_time_budget(call_ms, calls):
    assert TimingSettings(block_s=0.1, max_block=20).calls_per_block(call_ms) == calls


def test_a_call_that_outlasts_the_block_is_kept_and_a_shorter_block_drops_its_first():
    from deltamut.timing import worker

    times = iter([7.0, 5.0, 5.1])
    assert worker._block(lambda image: next(times), None, 3)["ms"] == [7.0, 5.0, 5.1]  # the parent drops 7.0
    assert worker._block(lambda image: 300.0, None, 1, drop=False)["ms"] == [300.0]


def test_a_job_retakes_at_most_its_share_of_blocks():
    assert TimingSettings(retake_share=0.5).retake_budget(12) == 6
    assert TimingSettings(retake_share=0).retake_budget(12) == 0


def _snap(wall, own, busy, stalled, cpus=2):
    from deltamut.timing.contention import Snapshot

    return Snapshot(wall, own, busy, stalled, frozenset(range(cpus)))


def test_a_block_is_disturbed_by_the_share_of_it_a_neighbour_held_the_cores():
    from deltamut.timing.contention import _TICK_S, foreign_share

    # 0.2 s on 2 CPUs; some task waited for a CPU for 0.05 s of it: a quarter of the block
    assert foreign_share(_snap(0, 0, None, 1.0), _snap(0.2, 0.4, None, 1.05)) == pytest.approx(0.25)
    # nobody waited, but the CPUs were busy 0.3 s beyond our own 0.1 s (a neighbour, or steal), less a tick each
    share = foreign_share(_snap(0, 0, 10.0, 0.0), _snap(0.2, 0.1, 10.4, 0.0))
    assert share == pytest.approx((0.3 - 2 * _TICK_S) / 0.4)
    # within a tick per CPU of our own time: quiet
    assert foreign_share(_snap(0, 0, 10.0, 0.0), _snap(0.2, 0.4, 10.0 + 0.4 + _TICK_S, 0.0)) == 0.0
    assert foreign_share(_snap(0, 0, None, None), _snap(0.2, 0.4, None, None)) is None


def test_a_pair_is_compared_on_the_rounds_neither_side_was_disturbed_in_or_not_at_all():
    from deltamut.timing.records import compare_members

    a = {"rounds": [[10.0]] * 6, "disturbed": [False, True, False, False, False, False]}
    b = {"rounds": [[13.0]] * 5 + [[1.0]], "disturbed": [False, False, False, False, False, True]}
    lat, busy = compare_members(a, b, min_undisturbed_share=0.5)
    assert (lat.n_a, lat.ratio, busy) == (4, pytest.approx(1.3), "")  # rounds 1 and 5 left out
    lat, busy = compare_members(a, b, min_undisturbed_share=0.8)
    assert lat.n_a == 4 and busy.startswith("machine busy: only 4 of 6 rounds")
    legacy = compare_members({"rounds": [[10.0]] * 3}, {"rounds": [[13.0]] * 3})  # records without flags
    assert legacy[0].n_a == 3 and legacy[1] == ""
