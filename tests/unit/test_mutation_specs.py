"""Mutation specs are checked against their operators' declarations, without TVM, at planning time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deltamut.mutations import OPERATORS
from deltamut.mutations.base import MutationSpecError, check_spec, relax_op_names, spec_schema

ROOT = Path(__file__).resolve().parents[2]


def test_the_op_registry_file_is_the_installed_tvms():
    """relax_ops.txt lets planning check op names without importing TVM; it must be what TVM registers."""
    code = "import tvm; print('\\n'.join(sorted(n for n in tvm.ir.Op.list_op_names() if n.startswith('relax.'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert relax_op_names() - {"pattern.relu6"} == set(out.stdout.split())


def test_every_catalog_entry_passes_and_names_only_registered_ops():
    for name, spec in yaml.safe_load((ROOT / "config" / "mutations.yaml").read_text()).items():
        check_spec(spec)  # raises naming the key otherwise
        for key in OPERATORS[spec["operator"]].op_params:
            value = spec.get(key, OPERATORS[spec["operator"]].params.get(key))
            assert set([value] if isinstance(value, str) else value) <= relax_op_names(), name


def test_every_operator_declares_a_schema_for_each_parameter():
    for name, cls in OPERATORS.items():
        props = spec_schema(cls)["properties"]
        assert set(cls.params) <= set(props), name
        assert all(props[p] for p in cls.params), f"{name}: a parameter with no type"


@pytest.mark.parametrize("spec, key", [
    ({"operator": "transpose_input", "inptu": 0}, "inptu"),
    ({"operator": "transpose_input", "input": -1}, "input"),
    ({"operator": "transpose_input", "axes": [1]}, "axes"),
    ({"operator": "insert_unary", "unary": "relax.nosuchop"}, "unary"),
    ({"operator": "insert_unary", "position": "inside"}, "position"),
    ({"operator": "replace_op", "from": ["relax.add", "relax.nn.relu6"], "to": "relax.subtract"}, "from"),
    ({"operator": "gaussian_fuzz", "fraction": 2}, "fraction"),
    ({"operator": "rotation", "random": "yes"}, "random"),
    ({"operator": "cmp_swap", "sites": [[3, 1]]}, "sites"),
    ({"operator": "cmp_swap", "sites": {"sample": 3, "seeds": 1}}, "sites"),
    ({"operator": "cmp_swap", "category": "Model-level"}, "category"),
    ({"operator": "identity", "level": "graph"}, "level"),
    ({"operator": "nope"}, "operator"),
], ids=lambda v: v if isinstance(v, str) else v["operator"])
def test_bad_specs_name_their_key(spec, key):
    with pytest.raises(MutationSpecError) as info:
        check_spec(spec)
    assert str(info.value).split(":")[0].split(".")[0] == key, str(info.value)  # "<key>: what is wrong"
