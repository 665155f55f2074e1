"""The study expansion and the config loader: what the DAG is made of, and errors that name the key."""

from __future__ import annotations

import copy
import functools
import json
import tempfile
from pathlib import Path

import pytest
import yaml

from deltamut.config import ConfigError, load_study

REPO = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


# The census of the default study's sweep (mnn09_sites: 16 of Lite0's 49 batch norms), as its checkpoint writes it
CENSUS = {"candidates": 49, "chosen": [1, 2, 3, 4, 10, 11, 18, 20, 21, 22, 23, 27, 28, 35, 36, 46],
          "sites": [{"site": k, "depth": round(k / 48, 4)} for k in range(49)]}


def study(**changes):
    config = copy.deepcopy(DEFAULT)
    config.update(changes)
    s = load_study(config, base=REPO)
    s.site_source = lambda *_: _census_file()
    return s


@functools.cache
def _census_file() -> str:
    path = Path(tempfile.mkdtemp(prefix="deltamut-census-")) / "census.json"
    path.write_text(json.dumps(CENSUS))
    return str(path)


def test_default_study_expands_to_the_documented_axes():
    s = study()
    assert list(s.models) == ["efficientnet_lite0", "efficientnet_lite1", "vit_ti_16"]
    mutants = s.mutants("efficientnet_lite0", "extended")
    # MutateNN's 22 entries and the 16 one-site mutants of the mnn09 sweep its census chose
    assert mutants[0] == "original" and len(mutants) == 1 + 22 + 16
    assert all(m.startswith("mnn") for m in mutants[1:])
    assert [m for m in mutants if ".site" in m] == [f"mnn09_sites.site{k}" for k in CENSUS["chosen"]]
    assert s.mutation("mnn09_sites.site4")["sites"] == [[4, 4]]
    assert s.site_of("efficientnet_lite0", "extended", "mnn09_sites.site4") == \
        {"sweep": "mnn09_sites", "site": 4, "depth": round(4 / 48, 4)}
    assert len(s.mutants("efficientnet_lite0", "extended", expand=False)) == 23  # before the census ran
    assert s.mutants("vit_ti_16", "extended") == ["original", "mnn02_transpose_dense_in0",
                                                  "mnn03_transpose_conv2d_dense_in0"]
    assert s.mutants("efficientnet_lite0", "basic") == ["original"]  # mutate_under: [extended]
    assert s.mutants("efficientnet_lite1", "extended") == ["original"]
    variants = s.variants("efficientnet_lite0")
    assert {"torch", "onnxruntime", "tvm/basic/original/cpu", "tvm/extended/mnn11_relu_to_sigmoid/cpu"} <= set(variants)
    kinds = [p["kind"] for p in s.pairs("efficientnet_lite0")]
    # 3 optimisations + the two conversions compiled under `default` (legacy-opset17, torch-export)
    assert kinds.count("compiler") == 5 and kinds.count("mutant") == 22 + 16
    assert kinds.count("framework") == 3  # onnxruntime on the primary ONNX and on both legacy conversions
    assert kinds.count("optimisation") == 2 and kinds.count("precision") == 1
    assert kinds.count("conversion") == 4


def test_conversions_live_in_their_own_result_tree():
    s = study()
    variants = s.variants("efficientnet_lite0")
    legacy = variants["tvm@legacy-opset17/default/original/cpu"]
    assert legacy["path"] == "results/efficientnet_lite0@legacy-opset17/tvm/default/original/infer/cpu/outputs.npz"
    assert legacy["conversion"] == "legacy-opset17" and variants["tvm/default/original/cpu"]["conversion"] == "onnx"
    assert variants["onnxruntime@legacy-opset13"]["path"] == \
        "results/efficientnet_lite0@legacy-opset13/reference/onnxruntime.npz"
    assert "onnxruntime@torch-export" not in variants  # torch.export makes no ONNX
    assert s.export_settings("efficientnet_lite0@legacy-opset13") == {"exporter": "legacy", "opset": 13, "batch": 1}
    assert s.export_settings("efficientnet_lite0") == {"exporter": "dynamo", "opset": 18, "batch": 1}
    assert s.export_settings("efficientnet_lite0+b4") == {"exporter": "dynamo", "opset": 18, "batch": 4}
    assert s.model_spec("efficientnet_lite0@torch-export") == s.model_spec("efficientnet_lite0")
    assert s.inputs_path("efficientnet_lite0@torch-export") == s.inputs_path("efficientnet_lite0")
    assert s.mutants("efficientnet_lite0@torch-export", "extended") == ["original"]


def test_conversion_and_pair_references_are_checked():
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    with pytest.raises(ValueError, match=r"conversions.x.compile_under: unknown optimisation\(s\) \['fastest'\]"):
        load_study({**base, "conversions": {"x": {"exporter": "legacy", "compile_under": ["fastest"]}}}, base=REPO)
    with pytest.raises(ValueError, match=r"conversions.x.exporter"):
        load_study({**base, "conversions": {"x": {"exporter": "tf2onnx"}}}, base=REPO)
    with pytest.raises(ValueError, match=r"compare.pairs\[0\].b: efficientnet_lite0 has no variant 'tvm/x'"):
        load_study({**base, "compare": {"pairs": [{"a": "torch", "b": "tvm/x"}]}}, base=REPO)
    ok = load_study({**base, "compare": {"pairs": [{"a": "onnxruntime@legacy-opset13", "b": "torch64"}]}}, base=REPO)
    assert {"kind": "custom", "a": "onnxruntime@legacy-opset13", "b": "torch64"} in ok.pairs("efficientnet_lite1")


def test_defaults_are_filled_in():
    s = study()
    assert s.config["runner"]["max_restarts"] == 2 and s.config["compare"]["topk"] == 5
    assert s.config["frameworks"] == ["torch", "onnxruntime"]


def test_model_spec_strips_study_keys():
    assert study().model_spec("efficientnet_lite0") == {"source": "zoo", "seed": 0}


def test_input_level_mutants_reuse_the_original_build():
    s = study(models={"m": {"source": "zoo", "arch": "mobilenet_v2", "mutants": ["input_jpeg", "mnn19_lt_to_le"]}},
              ablation={"of": "extended"})
    assert s.is_input_mutant("input_jpeg") and not s.is_input_mutant("mnn19_lt_to_le")
    assert s.variants("m")["tvm/basic/input_jpeg/cpu"]["manifest"].endswith("/original/manifest.json")


def test_an_onnx_model_is_compared_against_onnxruntime():
    s = study(models={"m": {"source": "onnx", "path": "m.onnx"}}, ablation={"of": "extended"})
    assert s.frameworks("m") == ["onnxruntime"] and s.reference("m") == "onnxruntime"
    assert not s.conversions("m") and not s.float64_reference("m")  # no PyTorch module to convert or run


@pytest.mark.parametrize("change, culprit", [
    ({"modles": {}}, "'modles'"),
    ({"runner": {"repeats": "three"}}, "runner.repeats"),
    ({"optimisations": {"x": {"llvm": {"opt_level": 3}}}}, "'opt_level'"),
    ({"devices": {"board": {"target": "riscv"}}}, "devices.board.target: unknown target 'riscv'"),
    ({"models": {"m": {"arch": "resnet18", "mutants": ["mnn99_nothing"]}}}, "unknown mutation(s) ['mnn99_nothing']"),
    ({"models": {"m": {"arch": "resnet18", "mutate_under": ["O9"]}}}, "models.m.mutate_under"),
    ({"models": {"bad name!": {"arch": "resnet18"}}}, "bad name!"),
    ({"compare": {"reference": "onnxruntime"}, "frameworks": ["torch"]}, "compare.reference"),
    ({"mutation_catalog": "nowhere.yaml"}, "nowhere.yaml"),
])
def test_bad_config_names_the_culprit(change, culprit):
    with pytest.raises(ConfigError) as err:
        study(**change)
    assert culprit in str(err.value)
    assert "\n" not in str(err.value)  # one line, no schema dump


def test_ablation_switches_each_step_off_in_turn():
    from deltamut.ablation import ablation_steps

    s = study()
    extended = s.optimisations["extended"]
    steps = ablation_steps(extended)
    # the four graph passes, fusion, constant folding, fast-math, LLVM -O3 and the CPU schedules
    assert list(steps) == [*extended["passes"], "fuse", "fold_constants", "fast-math", "llvm-opt", "schedule"]
    assert "FoldConstant" not in steps["FoldConstant"]["passes"] and len(steps["FoldConstant"]["passes"]) == 3
    assert steps["fast-math"]["llvm"] == {"opt-level": 3} and steps["llvm-opt"]["llvm"]["opt-level"] == 0
    assert steps["schedule"]["schedule"] == "none" and steps["fuse"]["fuse"] is False
    assert extended["llvm"] == {"opt-level": 3, "fast-math": True}  # the base is left alone
    ablated = s.ablations("efficientnet_lite0")
    assert set(ablated) == {f"extended.no-{step}" for step in steps} and s.ablations("efficientnet_lite1") == {}
    assert s.optimisation("extended.no-schedule") == ablated["extended.no-schedule"]
    pairs = [p for p in s.pairs("efficientnet_lite0") if p["kind"] == "ablation"]
    assert len(pairs) == len(steps) and {p["b"] for p in pairs} == {"tvm/extended/original/cpu"}
    # ablated configurations build the original only
    assert s.mutants("efficientnet_lite0", "extended.no-fuse") == ["original"]
    # nothing is rebuilt that an ablated step leaves alone: codegen steps copy the graph and the lowering,
    # lowering steps copy the graph, graph passes rebuild both
    for step, graph, lowering in [("fast-math", "extended", "extended"), ("schedule", "extended", "extended"),
                                  ("fuse", "extended", None), ("FoldConstant", None, None)]:
        opt = f"extended.no-{step}"
        assert s.source_opt("efficientnet_lite0", opt, "graph") == (graph or opt), step
        assert s.source_opt("efficientnet_lite0", opt, "lowering") == (lowering or opt), step
    assert s.source_opt("efficientnet_lite0", "extended", "graph") == "extended"
    # the inputs point at the base's artifacts: the ablated variant's module and manifest are extended's
    assert s.artifact("{model}/{opt}/{mutant}", "efficientnet_lite0", "extended.no-schedule") == \
        "efficientnet_lite0/extended/original"


def test_ablation_steps_are_checked():
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    with pytest.raises(ValueError, match=r"ablation.steps: basic has no step\(s\) \['schedule'\]"):
        load_study({**base, "ablation": {"of": "basic", "steps": ["schedule"]}}, base=REPO)
    with pytest.raises(ValueError, match=r"ablation.of: unknown optimisation 'fastest'"):
        load_study({**base, "ablation": {"of": "fastest"}}, base=REPO)
