"""Which pairs a study localises (deltamut.localise.plan) and the witnesses a probe runs on (witness)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deltamut.config import load_study
from deltamut.localise.plan import device_probe_of, probe_of, probe_path, probe_paths, probes
from deltamut.localise.witness import confirmed, witnesses

CATALOG = str(Path(__file__).resolve().parents[2] / "config" / "mutations.yaml")


def _study(tmp_path, localise):
    config = {
        "models": {"m": {"source": "zoo", "arch": "mobilenet_v2", "mutate_under": ["default"],
                         "mutants": ["mnn11_relu_to_sigmoid", "mnn16_store_minus_delta", "input_gaussian_noise",
                                     "mnn09_sites"]}},
        "optimisations": {"basic": {"fuse": False}, "default": {}},
        "devices": {"cpu": {"target": "x86_64"}, "board": {"target": "arm", "rpc": {"host": "h", "port": 1}},
                    "gpu": {"target": "cuda"}},
        "targets": {"x86_64": {"kind": "llvm"}, "arm": {"kind": "llvm", "mtriple": "aarch64-linux-gnu"},
                    "cuda": {"kind": "cuda"}},
        "mutations": {"mnn09_sites": {"operator": "insert_unary", "ops": ["relax.nn.batch_norm"],
                                      "unary": "relax.round", "position": "before", "sites": "each"}},
        "mutation_catalog": CATALOG,
        "localise": localise,
    }
    return load_study(config, base=tmp_path)


def test_selected_mutants_are_probed_on_host_cpu_devices_only(tmp_path):
    study = _study(tmp_path, {"mutants": ["mnn1*", "input_*", "mnn09*"]})
    run, left = probes(study, "m")
    # mnn11 and mnn16 under the one optimisation they are built for, on the host CPU only (not the RPC board,
    # not the GPU); the input-level mutant runs the original's library and the sweep's mutants are a census's
    assert [(p["opt"], p["mutant"], p["device"]) for p in run] == [
        ("default", "mnn11_relu_to_sigmoid", "cpu"), ("default", "mnn16_store_minus_delta", "cpu")]
    assert left == []
    assert probe_paths(study) == [
        "results/m/tvm/default/mnn11_relu_to_sigmoid/localise/cpu/profile.json",
        "results/m/tvm/default/mnn16_store_minus_delta/localise/cpu/profile.json"]
    probe = probe_of(study, "m", "default", "mnn16_store_minus_delta", "cpu")
    assert (probe["a"], probe["b"]) == ("tvm/default/mnn16_store_minus_delta/cpu", "tvm/default/original/cpu")
    assert probe["original_lib"] == "results/m/tvm/default/original/deploy/x86_64/lib.so"
    assert probe["onnx"] == "results/m/export/model.onnx"


def test_a_probe_rebuilds_under_its_configuration_and_target_and_graph_mutants_with_their_entry(tmp_path):
    study = _study(tmp_path, {"mutants": ["mnn1*"]})
    graph = probe_of(study, "m", "default", "mnn11_relu_to_sigmoid", "cpu")["rebuild"]
    assert graph["mutation"]["operator"] == "replace_op" and graph["target"] == {"kind": "llvm"}
    assert graph["optimisation"] == study.optimisation("default") and graph["level"] == "graph"
    kernel = probe_of(study, "m", "default", "mnn16_store_minus_delta", "cpu")
    assert kernel["rebuild"]["level"] == "kernel" and "mutation" not in kernel["rebuild"]
    assert kernel["mutant_module"] == "results/m/tvm/default/mnn16_store_minus_delta/module.json"
    assert kernel["original_module"] == "results/m/tvm/default/original/module.json"


def test_the_budget_keeps_the_first_probes_and_names_the_rest(tmp_path):
    study = _study(tmp_path, {"mutants": ["mnn1*"], "max_probes": 1})
    run, left = probes(study, "m")
    assert [p["mutant"] for p in run] == ["mnn11_relu_to_sigmoid"]
    assert [p["mutant"] for p in left] == ["mnn16_store_minus_delta"]


def test_no_selection_no_probe(tmp_path):
    assert probes(_study(tmp_path, {}), "m") == ([], [])


def test_a_wrong_localise_key_is_named_at_planning(tmp_path):
    with pytest.raises(Exception, match="mutant"):
        _study(tmp_path, {"mutant": ["mnn1*"]})


def _per_image(tmp_path, flips: list[bool], err: list[float], ok: list[bool] | None = None) -> Path:
    n = len(flips)
    ok = ok or [True] * n
    rows = pd.DataFrame({"kind": "mutant", "a": "A", "b": "B", "image": [f"i{k}" for k in range(n)],
                         "status_a": ["ok" if o else "crash" for o in ok], "status_b": "ok",
                         "top1_agree": [not f for f in flips], "top1_b": 0, "max_abs_err": err})
    other = rows.assign(a="C")  # another pair's rows are not read
    path = tmp_path / "per_image.parquet"
    pd.concat([rows, other]).to_parquet(path)
    return path


def test_witnesses_are_the_flipped_images_then_the_most_moved(tmp_path):
    path = _per_image(tmp_path, flips=[False, True, False, True, True, False],
                      err=[0.1, 5.0, 0.9, 4.0, 3.0, 0.5], ok=[True, True, True, True, False, True])
    w = witnesses(path, "A", "B", max_images=4)
    # i4 flipped but its mutant side crashed: not a witness of a flip
    assert w["images"] == ["i1", "i3", "i2", "i5"] and w["kind"] == "flips" and w["k"] == 1
    assert (w["flipped_in_table"], w["images_in_table"], w["ran_in_table"]) == (2, 6, 5)


def test_a_pair_that_flips_nothing_has_the_drift_predicate(tmp_path):
    w = witnesses(_per_image(tmp_path, [False] * 3, [0.2, 0.1, 0.3]), "A", "B", max_images=8)
    assert (w["kind"], w["k"], w["images"]) == ("drift", 0, ["i2", "i0", "i1"])


def test_a_pair_that_flips_nothing_but_fails_has_the_symptom_predicate(tmp_path):
    path = _per_image(tmp_path, [False] * 5, [0.0] * 5, ok=[False, True, False, False, True])
    w = witnesses(path, "A", "B", max_images=2)
    # the variant crashed on i0, i2, i3 where the baseline ran: "crash on at least 1 of the 2 witnesses"
    assert (w["kind"], w["symptom"], w["k"], w["images"]) == ("symptom", "crash", 1, ["i0", "i2"])
    assert (w["failed_in_table"], w["ran_in_table"]) == (3, 2)
    # a flip among the images that ran takes precedence: the flip is the finding, judged on values
    flipped = _per_image(tmp_path, [False, True, False, False, False], [0.0] * 5, ok=[False, True, True, True, True])
    assert witnesses(flipped, "A", "B", max_images=8)["kind"] == "flips"


def test_confirmation_counts_the_probes_own_flips():
    logits = {"x": {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0])},
              "y": {"a": np.array([1.0, 0.0]), "b": np.array([1.0, 0.0])}}
    assert confirmed({"kind": "flips", "k": 1}, logits, 1e-6)["holds"]
    assert not confirmed({"kind": "flips", "k": 2}, logits, 1e-6)["holds"]
    same = {"y": logits["y"]}
    assert not confirmed({"kind": "drift", "k": 0}, same, 1e-6)["holds"]


def test_selected_optimisations_are_bisected_on_host_cpu_devices(tmp_path):
    study = _study(tmp_path, {"optimisations": ["def*"], "mutants": ["mnn16*"], "max_probes": 2})
    run, left = probes(study, "m")
    assert [(p["mutant"], p["opt"], p["device"]) for p in run] == [("mnn16_store_minus_delta", "default", "cpu"),
                                                                   ("", "default", "cpu")]
    assert left == []
    assert probe_paths(study)[1] == "results/m/tvm/default/localise/cpu/bisect.json"
    assert (run[1]["a"], run[1]["b"]) == ("tvm/default/original/cpu", "torch")


def test_findings_are_selected_by_kind_verdict_and_variant_once_compare_has_run(tmp_path):
    study = _study(tmp_path, {"kinds": ["mutant", "compiler"], "verdicts": ["top1_flip", "crash"],
                              "variants": ["tvm/default/*"], "mutants": ["mnn16*"], "max_probes": 3})
    rows = [("mutant", "tvm/default/mnn11_relu_to_sigmoid/cpu", "tvm/default/original/cpu", "top1_flip"),
            ("mutant", "tvm/default/mnn16_store_minus_delta/cpu", "tvm/default/original/cpu", "crash"),  # named
            ("mutant", "tvm/default/input_gaussian_noise/cpu", "tvm/default/original/cpu", "top1_flip"),  # input
            ("mutant", "tvm/default/mnn11_relu_to_sigmoid/board", "tvm/default/original/board", "crash"),  # RPC
            ("compiler", "tvm/default/original/cpu", "torch", "top1_flip"),
            ("compiler", "tvm/basic/original/cpu", "torch", "top1_flip"),  # not tvm/default/*
            ("device", "tvm/default/original/board", "tvm/default/original/cpu", "crash"),  # not a probed kind
            ("mutant", "tvm/default/mnn09_sites.site0/cpu", "tvm/default/original/cpu", "numeric_drift")]
    per_pair = tmp_path / "per_pair.parquet"
    pd.DataFrame(rows, columns=["kind", "a", "b", "verdict"]).to_parquet(per_pair)
    # before compare, only what is named up front
    assert [p["mutant"] for p in probes(study, "m")[0]] == ["mnn16_store_minus_delta"]
    run, left = probes(study, "m", per_pair)
    # the named mutant first, then the findings in the table's order, each once, three in the budget
    assert [(p["opt"], p["mutant"], p["device"]) for p in run] == [
        ("default", "mnn16_store_minus_delta", "cpu"), ("default", "mnn11_relu_to_sigmoid", "cpu"),
        ("default", "", "cpu")]
    assert left == [] and (run[2]["a"], run[2]["b"]) == ("tvm/default/original/cpu", "torch")
    squeezed = _study(tmp_path, {"kinds": ["mutant"], "max_probes": 1})
    run, left = probes(squeezed, "m", per_pair)
    assert [p["mutant"] for p in run] == ["mnn11_relu_to_sigmoid"]
    assert [p["mutant"] for p in left] == ["mnn16_store_minus_delta"]


def test_a_device_pair_of_two_host_targets_is_probed_kernel_by_kernel(tmp_path):
    config = {
        "models": {"m": {"source": "zoo", "arch": "mobilenet_v2"}},
        "optimisations": {"default": {}},
        "devices": {"cpu": {"target": "x86_64"}, "nofma": {"target": "x86_nofma"}, "twin": {"target": "x86_64"}},
        "targets": {"x86_64": {"kind": "llvm"}, "x86_nofma": {"kind": "llvm", "mattr": ["-fma"]}},
        "mutation_catalog": CATALOG,
        "localise": {"kinds": ["device"], "verdicts": ["numeric_drift"]},
    }
    study = load_study(config, base=tmp_path)
    rows = [("device", "tvm/default/original/nofma", "tvm/default/original/cpu", "numeric_drift"),
            ("device", "tvm/default/original/twin", "tvm/default/original/cpu", "numeric_drift")]  # one library
    per_pair = tmp_path / "per_pair.parquet"
    pd.DataFrame(rows, columns=["kind", "a", "b", "verdict"]).to_parquet(per_pair)
    [probe], _ = probes(study, "m", per_pair)
    assert (probe["device"], probe["baseline"]) == ("nofma", "cpu")
    assert probe_path("m", probe) == "results/m/tvm/default/original/localise/nofma/against/cpu/profile.json"
    files = device_probe_of(study, "m", "default", "nofma", "cpu")
    assert files["mutant_lib"] == "results/m/tvm/default/original/deploy/x86_nofma/lib.so"
    assert files["original_lib"] == "results/m/tvm/default/original/deploy/x86_64/lib.so"


def test_a_device_pair_off_this_cpu_is_replayed_where_its_device_is(tmp_path):
    """A board over RPC and a GPU: the baseline's build is traced on the job's host and the device's kernels are
    replayed on the device, reached as its infer jobs reach it. An aarch64 CPU device run on its own node is
    not probed: its job would run there, where the x86 baseline's library does not load."""
    config = {
        "models": {"m": {"source": "zoo", "arch": "mobilenet_v2"}},
        "optimisations": {"default": {}},
        "devices": {"cpu": {"target": "x86_64"},
                    "board": {"target": "arm", "rpc": {"host": "h", "port": 9}, "session_timeout_s": 60},
                    "gpu": {"target": "cuda"}, "node": {"target": "arm", "partition": "arm64"}},
        "targets": {"x86_64": {"kind": "llvm"}, "arm": {"kind": "llvm", "mtriple": "aarch64-linux-gnu"},
                    "cuda": {"kind": "cuda"}},
        "mutation_catalog": CATALOG,
        "localise": {"kinds": ["device"], "verdicts": ["numeric_drift"]},
    }
    study = load_study(config, base=tmp_path)
    rows = [("device", f"tvm/default/original/{d}", "tvm/default/original/cpu", "numeric_drift")
            for d in ("board", "gpu", "node")]
    per_pair = tmp_path / "per_pair.parquet"
    pd.DataFrame(rows, columns=["kind", "a", "b", "verdict"]).to_parquet(per_pair)
    run, _ = probes(study, "m", per_pair)
    assert [(p["device"], p["baseline"]) for p in run] == [("board", "cpu"), ("gpu", "cpu")]
    board = device_probe_of(study, "m", "default", "board", "cpu")
    assert board["replay_on"] == {"target_kind": "llvm", "rpc": {"host": "h", "port": 9}, "session_timeout_s": 60}
    assert board["mutant_lib"] == "results/m/tvm/default/original/deploy/arm/lib.so"
    assert device_probe_of(study, "m", "default", "gpu", "cpu")["replay_on"] == {"target_kind": "cuda"}
