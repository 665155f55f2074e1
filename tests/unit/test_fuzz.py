"""Fuzzing the two places where a user's input meets the code: the config loader and the compare stage.

Whatever a config holds, loading it either gives a Study that can plan the whole workflow or raises the
one documented ConfigError; whatever result files the compare stage reads, it either grades them or
raises a ValueError that says what is wrong. Never a KeyError, TypeError or AttributeError from deep
inside, which would reach the user as a bare traceback.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import string
import tempfile
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deltamut.compare.tables import compare_pair
from deltamut.compare.verdicts import Thresholds, Verdict
from deltamut.config import ConfigError, load_study
from deltamut.outcome import Status
from deltamut.runner.outputs import Outputs
from tests.conftest import REPO

# Loading a config parses the schema and the mutation catalog (pure-Python YAML, ~0.2 s), hence fewer examples.
FUZZ_CONFIG = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ_COMPARE = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

BASE_CONFIGS = [yaml.safe_load((REPO / p).read_text()) for p in ("config/config.yaml", "tests/configs/tiny.yaml")]

# Names the schema and the study know, so that mutated configs often stay almost valid and reach the
# cross-reference checks instead of all dying at the first schema rule.
WORDS = ["models", "arch", "mobilenet_v2", "resnet18", "zoo", "onnx", "path", "mutants", "all", "mnn*",
         "mutate_under", "basic", "default", "optimisations", "passes", "FoldConstant", "targets", "x86_64",
         "devices", "cpu", "target", "rpc", "host", "port", "tracker", "key", "runner", "repeats", "compare",
         "reference", "torch", "onnxruntime", "mutations", "operator", "identity", "jpeg", "level", "input",
         "mutation_catalog", "config/mutations.yaml", "original", "dataset", "images", "labels", "limit",
         "frameworks", "llvm", "cuda", "kind", "preprocessing", "tflite", "sites", "timeouts", "compile_s"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 70000), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS), st.text(string.printable, max_size=12),
)
keys = st.one_of(st.sampled_from(WORDS), st.text(string.ascii_letters + "_.-*", min_size=1, max_size=10),
                 st.integers(-2, 5))
garbage = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(keys, inner, max_size=4)),
                       max_leaves=12)


def _containers(node, path=()):
    """Every (path, container) inside a config, the root included."""
    yield path, node
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        if isinstance(v, dict | list):
            yield from _containers(v, (*path, k))


def _at(node, path):
    for k in path:
        node = node[k]
    return node


@st.composite
def mutated_configs(draw):
    """A real config with a few random edits: a value replaced, a key deleted or a key added."""
    config = copy.deepcopy(draw(st.sampled_from(BASE_CONFIGS)))
    for _ in range(draw(st.integers(1, 4))):
        places = list(_containers(config))
        path, node = draw(st.sampled_from(places))
        op = draw(st.sampled_from(["replace", "delete", "add"]))
        if isinstance(node, dict):
            if op == "add" or not node:
                node[draw(keys)] = draw(garbage)
            elif op == "delete":
                del node[draw(st.sampled_from(sorted(node, key=str)))]
            else:
                node[draw(st.sampled_from(sorted(node, key=str)))] = draw(garbage)
        elif isinstance(node, list):
            if op == "add" or not node:
                node.append(draw(garbage))
            elif op == "delete":
                node.pop(draw(st.integers(0, len(node) - 1)))
            else:
                node[draw(st.integers(0, len(node) - 1))] = draw(garbage)
        if path and op == "replace" and draw(st.booleans()):  # sometimes replace a whole section
            _at(config, path[:-1])[path[-1]] = draw(garbage)
    return config


@functools.cache
def _census() -> str:
    """A sweep's census as its checkpoint writes it (two sites chosen), for any sweep of a fuzzed config."""
    path = Path(tempfile.mkdtemp(prefix="deltamut-fuzz-")) / "census.json"
    path.write_text(json.dumps({"candidates": 2, "chosen": [0, 1], "sites": [{"site": 0, "depth": 0.0},
                                                                            {"site": 1, "depth": 1.0}]}))
    return str(path)


def _load_or_refuse(config) -> None:
    """Load `config`; a Study must then plan every file of the workflow without raising (sweeps: once their
    census has run)."""
    try:
        study = load_study(config, base=REPO)
    except ConfigError as exc:
        assert str(exc).strip(), "a ConfigError must say what is wrong"
        return
    study.site_source = lambda *_: _census()
    study.final_outputs()
    for model in study.models:
        for v in study.variants(model).values():
            assert v["path"].startswith("results/")
        for pair in study.pairs(model):
            assert pair["a"] in study.variants(model) and pair["b"] in study.variants(model)
        study.model_manifests(model)
        for mutant in study.mutants(model):
            study.mutation(mutant)
            study.is_input_mutant(mutant)
    for device in study.devices:
        assert study.target_of(device) in study.targets


@FUZZ_CONFIG
@given(mutated_configs())
def test_config_loader_edited_real_configs(config):
    _load_or_refuse(config)


@FUZZ_CONFIG
@given(garbage)
def test_config_loader_garbage(config):
    _load_or_refuse(config)


def test_base_configs_load():
    """The fuzzing starts from configs that load: otherwise every example would just be refused."""
    for config in BASE_CONFIGS:
        assert load_study(copy.deepcopy(config), base=REPO).models


# --- the compare stage ---------------------------------------------------------------------------------

STATUSES = [s.value for s in Status]
floats_any = st.floats(allow_nan=True, allow_infinity=True, width=32)


@st.composite
def outputs(draw, n: int, ids: list[str]):
    width = draw(st.sampled_from([0, 1, 3, 7]))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16]))
    logits = draw(hnp.arrays(dtype, (n, width), elements=st.floats(allow_nan=True, allow_infinity=True,
                                                                   width=16)))
    repeats = draw(st.integers(1, 3))
    latency = draw(hnp.arrays(np.float64, (n, repeats), elements=st.floats(-1, 1e4) | st.just(math.nan)))
    status = np.array(draw(st.lists(st.sampled_from(STATUSES), min_size=n, max_size=n)), dtype=str)
    spread = draw(hnp.arrays(np.float64, (n,), elements=floats_any))
    meta = draw(st.sampled_from([{}, {"versions": {"apache-tvm": "0.27"}, "host": {"hostname": "h"},
                                      "deploy": {"target": "llvm"}}, {"deploy": None, "host": {}}]))
    out = Outputs(ids=np.array(ids, dtype=str), logits=logits, latency_ms=latency, status=status,
                  error=np.full(n, "", dtype=str), meta=meta, repeat_spread=spread)
    if draw(st.integers(0, 5)) == 0:  # a malformed file: one field of another shape
        name = draw(st.sampled_from(["logits", "latency_ms", "status", "repeat_spread"]))
        shape = draw(st.sampled_from([(), (n + 1,), (n, 2, 2), (n + 1, 3), (0, 0)]))
        setattr(out, name, np.full(shape, "ok") if name == "status" else np.zeros(shape))
    return out


@st.composite
def pairs(draw):
    n = draw(st.integers(0, 4))
    ids = [f"img{i}.png" for i in range(n)]
    a = draw(outputs(n, ids))
    b = draw(outputs(n, ids))
    if n and draw(st.integers(0, 4)) == 0:  # mismatched ids, as if the two sides ran on other images
        b.ids = np.array(list(reversed(ids)) if n > 1 else ["other.png"], dtype=str)
    labels = draw(hnp.arrays(np.int64, (n,), elements=st.integers(-1, 8)))
    return a, b, labels


@FUZZ_COMPARE
@given(pairs(), st.integers(1, 9))
def test_compare_pair_grades_or_refuses(pair, k):
    a, b, labels = pair
    coords = {"a": {"framework": "tvm", "opt": "basic"}, "b": {"framework": "torch"}}
    try:
        rows, summary = compare_pair("m", "compiler", "a", "b", a, b, labels, coords, Thresholds(topk=k))
    except ValueError as exc:
        assert str(exc).strip()
        return
    n = len(a.ids)
    assert len(rows) == n and summary["n_images"] == n
    assert summary["n_compared"] <= min(int((a.status == "ok").sum()), int((b.status == "ok").sum()))
    assert set(rows["verdict"]) <= {v.value for v in Verdict}
    # the baseline's failures are never a verdict about a
    b_failed = ~np.isin(b.status, ["ok", "equivalent"])
    assert (rows["verdict"][b_failed] == "not_comparable").all()
    assert not (rows["verdict"][~b_failed] == "not_comparable").any()


def _good(n: int = 2, width: int = 3) -> Outputs:
    return Outputs(ids=np.array([f"i{j}" for j in range(n)]), logits=np.zeros((n, width), np.float32),
                   latency_ms=np.ones((n, 2)), status=np.full(n, "ok"), error=np.full(n, ""))


@pytest.mark.parametrize("break_it, culprit", [
    (lambda o: setattr(o, "ids", np.array(["i0", "i1"])), "different images"),
    (lambda o: setattr(o, "logits", np.zeros((3, 3), np.float32)), "logits"),
    (lambda o: setattr(o, "logits", np.zeros(2, np.float32)), "logits"),
    (lambda o: setattr(o, "status", np.array(["ok", "ok", "ok"])), "status"),
    (lambda o: setattr(o, "status", np.array(["ok", "exploded"])), "exploded"),
    (lambda o: setattr(o, "latency_ms", np.ones(5)), "latency"),
    (lambda o: setattr(o, "repeat_spread", np.ones(7)), "repeat_spread"),
])
def test_compare_pair_names_the_malformed_input(break_it, culprit):
    """Hand-made malformed result files: the ValueError names what is malformed."""
    a, b = _good(), _good()
    if culprit != "different images":
        break_it(a)
    else:
        a, b = _good(3), _good()
    with pytest.raises(ValueError, match=culprit):
        compare_pair("m", "compiler", "a", "b", a, b, np.array([1, -1]), {"a": {}, "b": {}}, Thresholds())


def test_compare_pair_rejects_labels_of_another_length():
    with pytest.raises(ValueError, match="labels"):
        compare_pair("m", "compiler", "a", "b", _good(), _good(), np.array([1, 2, 3]), {"a": {}, "b": {}},
                     Thresholds())
