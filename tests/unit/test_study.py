"""The study expansion and the config loader: what the DAG is made of, and errors that name the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from deltamut.config import ConfigError, load_study

REPO = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def study(**changes):
    config = copy.deepcopy(DEFAULT)
    config.update(changes)
    return load_study(config, base=REPO)


def test_default_study_expands_to_the_documented_axes():
    s = study()
    assert list(s.models) == ["efficientnet_lite0", "efficientnet_lite1"]
    mutants = s.mutants("efficientnet_lite0", "extended")
    assert mutants[0] == "original" and len(mutants) == 23  # MutateNN's 22 entries
    assert all(m.startswith("mnn") for m in mutants[1:])
    assert s.mutants("efficientnet_lite0", "basic") == ["original"]  # mutate_under: [extended]
    assert s.mutants("efficientnet_lite1", "extended") == ["original"]
    variants = s.variants("efficientnet_lite0")
    assert {"torch", "onnxruntime", "tvm/basic/original/cpu", "tvm/extended/mnn11_relu_to_sigmoid/cpu"} <= set(variants)
    kinds = [p["kind"] for p in s.pairs("efficientnet_lite0")]
    assert kinds.count("compiler") == 3 and kinds.count("mutant") == 22 and kinds.count("framework") == 1
    assert kinds.count("optimisation") == 2


def test_defaults_are_filled_in():
    s = study()
    assert s.config["runner"]["max_restarts"] == 2 and s.config["compare"]["topk"] == 5
    assert s.config["frameworks"] == ["torch", "onnxruntime"]


def test_model_spec_strips_study_keys():
    assert study().model_spec("efficientnet_lite0") == {"source": "zoo", "seed": 0}


def test_input_level_mutants_reuse_the_original_build():
    s = study(models={"m": {"source": "zoo", "arch": "mobilenet_v2", "mutants": ["input_jpeg", "mnn19_lt_to_le"]}})
    assert s.is_input_mutant("input_jpeg") and not s.is_input_mutant("mnn19_lt_to_le")
    assert s.variants("m")["tvm/basic/input_jpeg/cpu"]["manifest"].endswith("/original/manifest.json")


def test_an_onnx_model_is_compared_against_onnxruntime():
    s = study(models={"m": {"source": "onnx", "path": "m.onnx"}})
    assert s.frameworks("m") == ["onnxruntime"] and s.reference("m") == "onnxruntime"


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
