"""Mutation engine on a real tiny CNN: torch -> ONNX (dynamo) -> Relax -> mutate -> tvm.compile -> VM.

Expected site counts come from walking the original IR independently of the engine's rewriters.
Conditional mutants flip bounds guards and may touch memory out of bounds, so they run in child
processes only.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

import deltamut.mutations as dm

ROOT = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((ROOT / "config" / "mutations.yaml").read_text())

MNN_CATEGORIES = (
    ["Node Input/Output Modification"] * 9
    + ["Arithmetic Node Replacement", "Layer Node Replacement"]
    + ["Arithmetic Types"] * 4
    + ["Kernel Variables & Stores"] * 2
    + ["Conditional Statement Operations"] * 5
)


# ----- fixtures: one real model, built once ---------------------------------------------------------


def tiny_onnx():
    """The graph torch.onnx.export(dynamo=True, opset 18) gives for conv+bias, relu, relu6, residual add,
    batchnorm after the add (so not folded into a conv), padded maxpool, global mean and two Linear
    layers (Gemm, transB=1; one square), written with onnx.helper: the same ONNX nodes without the
    ~25 s that a torch export costs. One of each site kind the catalog targets."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name, *shape, scale=0.3, low=None):
        arr = rng.uniform(low, 2.0, shape) if low is not None else rng.normal(0, scale, shape)
        return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)

    inits = [
        init("w1", 8, 3, 3, 3),
        init("b1", 8, scale=0.1),
        init("w2", 8, 8, 3, 3),
        init("b2", 8, scale=0.1),
        init("bn_s", 8, low=0.5),
        init("bn_b", 8, scale=0.1),
        init("bn_m", 8, scale=0.2),
        init("bn_v", 8, low=0.5),
        init("fc1_w", 8, 8),
        init("fc1_b", 8, scale=0.1),
        init("fc2_w", 10, 8),
        init("fc2_b", 10, scale=0.1),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(6.0, np.float32), "hi"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
    ]
    pads = {"pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], **pads),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], **pads),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
        helper.make_node("Add", ["r1", "r2"], ["s"]),
        helper.make_node("BatchNormalization", ["s", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"]),
        helper.make_node("MaxPool", ["bn"], ["p"], kernel_shape=[3, 3], strides=[2, 2], **pads),
        helper.make_node("ReduceMean", ["p", "axes"], ["m"], keepdims=0),
        helper.make_node("Gemm", ["m", "fc1_w", "fc1_b"], ["f1"], transB=1),
        helper.make_node("Relu", ["f1"], ["r3"]),
        helper.make_node("Gemm", ["r3", "fc2_w", "fc2_b"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def graph_mod():
    from tvm.relax.frontend.onnx import from_onnx

    return from_onnx(tiny_onnx(), shape_dict={"x": [1, 3, 16, 16]}, keep_params_in_input=False)


def lower(mod):
    from tvm import relax

    return relax.get_pipeline("zero")(mod)


@pytest.fixture(scope="module")
def original(graph_mod):
    return lower(graph_mod)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype("float32")


outputs: dict[str, np.ndarray] = {}  # outputs of built mutants, shared between tests of one run


def run(mod, x: np.ndarray) -> np.ndarray:
    import tvm
    from tvm import relax

    exe = tvm.compile(mod, tvm.target.Target({"kind": "llvm"}))
    return relax.VirtualMachine(exe, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()


@pytest.fixture(scope="module")
def y0(original, x) -> np.ndarray:
    return run(original, x)


def op_counts(mod) -> collections.Counter:
    """Relax op names called in the module's Relax functions (an independent census of the IR)."""
    import tvm
    import tvm_ffi
    from tvm import relax

    counts: collections.Counter = collections.Counter()

    def on_call(c):
        if isinstance(c.op, tvm.ir.Op):
            counts[c.op.name] += 1

    for _gv, f in mod.functions_items():
        if isinstance(f, relax.Function):
            tvm_ffi.structural_walk(f, [(tvm.ir.Call, on_call)])
    return counts


def call_tir_callees(mod) -> list[str]:
    out = []
    for line in mod.script().splitlines():
        m = re.search(r"R\.call_tir\(cls\.(\w+),", line)
        if m:
            out.append(m.group(1))
    return out


def calls_with_shape(mod, names, arg_index):
    """Shapes of input `arg_index` of every call of `names` in the graph module, read off the script."""
    import tvm
    import tvm_ffi
    from tvm import relax

    shapes = []

    def on_call(c):
        if isinstance(c.op, tvm.ir.Op) and c.op.name in names and arg_index < len(c.args):
            ty = c.args[arg_index].ty
            shapes.append([int(d) for d in ty.shape.values] if isinstance(ty, relax.TensorType) else None)

    for _gv, f in sorted(mod.functions_items(), key=lambda t: t[0].name_hint):
        if isinstance(f, relax.Function):
            tvm_ffi.structural_walk(f, [(tvm.ir.Call, on_call)])
    return shapes


def tir_census(mod):
    """float32 stores and comparisons inside conditions of the lowered PrimFuncs, counted on the script."""
    text = mod.script()
    stores = 0
    for line in text.splitlines():
        s = line.strip()
        # a store line: `buf[...] = value` (not a buffer declaration, not a T.* call)
        if re.match(r"^\w+\[.*\] = ", s):
            stores += 1
    guards = re.findall(r"T\.if_then_else\((.*?), \w+\[", text)
    lt = sum(g.count(" < ") for g in guards)
    gt = sum(g.count(" > ") for g in guards)
    return {"stores": stores, "lt": lt, "gt": gt}


# ----- catalog and registry --------------------------------------------------------------------------


def test_import_loads_neither_tvm_nor_torch():
    code = (
        "import sys, deltamut.mutations as m\n"
        "info = [m.operator_info(n) for n in m.OPERATORS]\n"
        "assert 'tvm' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)\n"
        "print(len(info))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(dm.OPERATORS)


def test_catalog_is_valid_and_holds_the_22_mutatenn_entries():
    mnn = [n for n in CATALOG if n.startswith("mnn")]
    assert len(mnn) == 22
    assert [int(n[3:5]) for n in mnn] == list(range(1, 23))
    for name, spec in CATALOG.items():
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", name)
        info = dm.spec_info(spec)
        assert spec["category"] == info["category"], name
        assert spec["level"] == info["level"], name
        dm.OPERATORS[spec["operator"]](spec)  # parameters validate
    assert [CATALOG[n]["category"] for n in mnn] == MNN_CATEGORIES
    levels = collections.Counter(CATALOG[n]["level"] for n in CATALOG)
    assert levels["model"] >= 6 and levels["input"] >= 6


def test_bad_specs_are_rejected():
    with pytest.raises(dm.MutationSpecError):
        dm.OPERATORS["replace_op"]({"operator": "replace_op", "from": "relax.add", "to": "relax.sigmoid"})
    with pytest.raises(dm.MutationSpecError):
        dm.OPERATORS["cmp_swap"]({"operator": "cmp_swap", "from": "<", "too": "<="})
    with pytest.raises(dm.MutationSpecError):
        dm.OPERATORS["cmp_swap"]({"operator": "cmp_swap", "sites": [[3, 1]]})
    with pytest.raises(dm.MutationSpecError):
        dm.OPERATORS["store_scale"]({"operator": "store_scale", "eps": 1e-8})  # MutateNN's no-op


# ----- identity, equivalence, serialisation ------------------------------------------------------------


def test_identity_is_equivalent_and_round_trips(graph_mod, original):
    import tvm

    m = dm.mutate(graph_mod, {"operator": "identity"}, lower, original=original)
    assert m.manifest["equivalent"] is True and m.manifest["applied"] == 0
    assert dm.is_equivalent(m.module, original)
    assert dm.structural_key(m.module) == dm.structural_key(original)
    back = tvm.ir.load_json(tvm.ir.save_json(m.module))
    assert dm.is_equivalent(back, original)
    assert dm.ir_diff(dm.ir_text(original), dm.ir_text(m.module), "original") == ""


# ----- graph level --------------------------------------------------------------------------------


def _expected_graph_sites(graph_mod, spec) -> int:
    op = dm.OPERATORS[spec["operator"]](spec)
    if spec["operator"] == "transpose_input":
        shapes = calls_with_shape(graph_mod, op.p["ops"], op.p["input"])
        return sum(1 for s in shapes if s is not None and len(s) >= 2 and s[-1] == s[-2])
    counts = op_counts(graph_mod)
    if spec["operator"] == "insert_unary":
        return sum(counts[o] for o in op.p["ops"])
    if spec["operator"] == "replace_op":
        src = [spec["from"]] if isinstance(spec["from"], str) else spec["from"]
        relu6 = sum(1 for c in call_tir_callees(graph_mod) if c.startswith("minimum")) if "pattern.relu6" in src else 0
        return sum(counts[o] for o in src if o.startswith("relax.")) + relu6
    raise AssertionError(spec)


GRAPH_ENTRIES = [n for n, s in CATALOG.items() if s["level"] == "graph"]
# One entry per operator is built and run in the fast tests; test_every_entry_builds (slow) builds all.
BUILT = {
    "mnn01_transpose_conv2d_in0",
    "mnn06_exp_before_conv2d_dense",
    "mnn11_relu_to_sigmoid",
    "mnn12_store_float16",
    "mnn16_store_minus_delta",
    "mnn17_store_times_1_plus_eps",
}


@pytest.mark.parametrize("name", GRAPH_ENTRIES)
def test_graph_entry(name, graph_mod, original, x, y0):
    import tvm

    spec = CATALOG[name]
    expected = _expected_graph_sites(graph_mod, spec)
    m = dm.mutate(graph_mod, spec, lower, original=original)
    mf = m.manifest
    assert mf["candidates"] == expected and mf["applied"] == expected, mf
    assert [s["node"] for s in mf["sites"]] == list(range(expected))
    assert all(s["before"] != s["after"] for s in mf["sites"])
    if expected == 0:  # MutateNN's transpose of dense input 0: shapes (1, k) have no equal axes
        assert "no candidate" in mf["note"] and mf["equivalent"]
        return
    assert not mf["equivalent"] and not dm.is_equivalent(m.module, original)

    # what the graph rewrite did, counted on the graph-level result
    mutated, _ = dm.OPERATORS[spec["operator"]](spec).apply(graph_mod)
    before, after = op_counts(graph_mod), op_counts(mutated)
    if spec["operator"] == "transpose_input":
        assert after["relax.permute_dims"] - before["relax.permute_dims"] == expected
    elif spec["operator"] == "insert_unary":
        assert after[spec["unary"]] - before[spec["unary"]] == expected
    else:
        src = [spec["from"]] if isinstance(spec["from"], str) else spec["from"]
        assert all(after[o] == 0 for o in src if o.startswith("relax."))
        assert after[spec["to"]] - before[spec["to"]] == expected
        if "pattern.relu6" in src:  # the clip kernel pair is gone, not just bypassed
            assert not any(c.startswith(("minimum", "maximum")) for c in call_tir_callees(mutated))

    assert dm.is_equivalent(tvm.ir.load_json(tvm.ir.save_json(m.module)), m.module)
    if name in BUILT:
        y = run(m.module, x)
        assert y.shape == y0.shape
        assert not np.allclose(y, y0)


def test_relu_to_sigmoid_catches_relu6_clip_pattern(graph_mod):
    spec = CATALOG["mnn11_relu_to_sigmoid"]
    mf = dm.mutate(graph_mod, spec, lower).manifest
    kinds = collections.Counter(s["op"] for s in mf["sites"])
    assert kinds == {"relax.nn.relu": op_counts(graph_mod)["relax.nn.relu"], "pattern.relu6": 1}


def test_site_ranges_pick_the_same_sites_as_the_full_run(graph_mod, original):
    full = dm.mutate(graph_mod, CATALOG["mnn10_add_to_subtract"], lower).manifest
    assert full["applied"] >= 3
    part = dm.mutate(graph_mod, {**CATALOG["mnn10_add_to_subtract"], "sites": [[1, 2]]}, lower).manifest
    assert part["candidates"] == full["candidates"]
    assert part["sites"] == full["sites"][1:3]
    none = dm.mutate(graph_mod, {**CATALOG["mnn10_add_to_subtract"], "sites": [[90, 99]]}, lower, original)
    assert none.manifest["applied"] == 0 and "select none" in none.manifest["note"]
    assert none.manifest["equivalent"]


# ----- kernel level -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [n for n, s in CATALOG.items() if s["operator"] in ("cast_store", "store_subtract", "store_scale")]
)
def test_store_entry(name, graph_mod, original, x, y0):  # noqa: D103
    spec = CATALOG[name]
    m = dm.mutate(graph_mod, spec, lower, original=original)
    mf = m.manifest
    census = tir_census(original)
    assert mf["candidates"] == census["stores"] and mf["applied"] == census["stores"], mf
    assert {s["function"] for s in mf["sites"]} == {
        gv.name_hint for gv, f in original.functions_items() if type(f).__name__ == "PrimFunc"
    }
    assert not mf["equivalent"]
    if name not in BUILT:
        return
    y = outputs.setdefault(name, run(m.module, x))
    assert np.abs(y - y0).max() > 1e-4, "a store mutant must change the outputs"
    # the value-perturbing mutants stay close to the original: the delta is small but real
    if spec["operator"] in ("store_subtract", "store_scale"):
        assert np.abs(y - y0).max() < 1.0


def test_store_mutants_scale_with_their_parameter(graph_mod, x, y0):
    large = outputs.get("mnn17_store_times_1_plus_eps")
    if large is None:
        large = run(dm.mutate(graph_mod, CATALOG["mnn17_store_times_1_plus_eps"], lower).module, x)
    small = run(dm.mutate(graph_mod, {"operator": "store_scale", "eps": 2.0**-20}, lower).module, x)
    assert 0 < np.abs(small - y0).max() < np.abs(large - y0).max()


def test_store_site_range_changes_only_selected_kernel(graph_mod, original):
    full = dm.mutate(graph_mod, {"operator": "store_subtract"}, lower).manifest["sites"]
    last = len(full) - 1
    m = dm.mutate(graph_mod, {"operator": "store_subtract", "sites": [[last, last]]}, lower)
    assert m.manifest["sites"] == [full[-1]]
    changed = [
        gv.name_hint
        for gv, f in m.module.functions_items()
        if type(f).__name__ == "PrimFunc" and not dm.is_equivalent(f, original[gv.name_hint])
    ]
    assert changed == [full[-1]["function"]]


CONDITIONAL = [n for n, s in CATALOG.items() if s["category"] == "Conditional Statement Operations"]

_CHILD = textwrap.dedent(
    """
    import sys, numpy as np, tvm
    from pathlib import Path
    from tvm import relax
    d = Path(sys.argv[1])
    x = np.load(d / "x.npy")
    for name in sys.argv[2:]:
        (d / "current").write_text(name)
        mod = tvm.ir.load_json((d / f"{name}.json").read_text())
        exe = tvm.compile(mod, tvm.target.Target({"kind": "llvm"}))
        y = relax.VirtualMachine(exe, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
        np.save(d / f"{name}.npy", y)
    """
)


def run_isolated(d: Path, names: list[str], timeout: float = 120) -> dict[str, str]:
    """Run mutants in a child process, one after the other; a crash costs only the mutant that crashed
    (the rest go on in a fresh child), which keeps one TVM import for the common case."""
    status: dict[str, str] = {}
    todo = list(names)
    while todo:
        (d / "current").unlink(missing_ok=True)
        try:
            p = subprocess.run(
                [sys.executable, str(d / "child.py"), str(d), *todo], capture_output=True, cwd=ROOT, timeout=timeout
            )
            rc = p.returncode
        except subprocess.TimeoutExpired:
            rc = None
        for n in list(todo):
            if (d / f"{n}.npy").exists():
                status[n] = "ok"
                todo.remove(n)
        if todo:
            cur = (d / "current").read_text() if (d / "current").exists() else todo[0]
            status[cur] = "timeout" if rc is None else f"crash (rc {rc})"
            todo.remove(cur)
    return status


@pytest.fixture(scope="module")
def conditional_outcomes(graph_mod, original, x, tmp_path_factory):
    """Build and run every conditional mutant that has sites, isolated from the pytest process."""
    import tvm

    d = tmp_path_factory.mktemp("cond")
    np.save(d / "x.npy", x)
    (d / "child.py").write_text(_CHILD)
    results: dict[str, dict] = {}
    for name in CONDITIONAL:
        m = dm.mutate(graph_mod, CATALOG[name], lower, original=original)
        results[name] = {"manifest": m.manifest}
        if m.manifest["applied"]:
            (d / f"{name}.json").write_text(tvm.ir.save_json(m.module))
    status = run_isolated(d, [n for n in CONDITIONAL if results[n]["manifest"]["applied"]])
    for name, st in status.items():
        results[name]["status"] = st
        if st == "ok":
            results[name]["y"] = np.load(d / f"{name}.npy")
    return results


@pytest.mark.parametrize("name", CONDITIONAL)
def test_conditional_entry(name, conditional_outcomes, original, y0):
    spec = CATALOG[name]
    res = conditional_outcomes[name]
    mf = res["manifest"]
    census = tir_census(original)
    expected = census["gt"] if spec.get("from") == ">" else census["lt"]
    assert mf["candidates"] == expected and mf["applied"] == expected, mf
    if expected == 0:
        assert "no candidate" in mf["note"] and mf["equivalent"]
        return
    assert all(s["within"] == "if_then_else" for s in mf["sites"])
    # Each builds and runs to the end in its child process. `<` -> `>`: `1 <= i and i > N-1` never holds, so
    # every padded read becomes the pad value, in bounds; `<=` and `< + 0.5` admit one index past each bound,
    # which on this model stays inside the buffers' allocations. Either way the padded borders change.
    assert res["status"] == "ok", res["status"]
    assert not np.allclose(res["y"], y0)


def test_float_offset_and_lt_to_le_are_one_mutation_after_simplification(graph_mod, original):
    """MutateNN's `a < b + 0.5` (mnn18) and `a <= b` (mnn19) differ as IR but not on integer indices: their
    canonical forms hash alike, and differ from the original's and from `<` -> `>` (mnn20)."""
    keys = {}
    for name in ("mnn18_lt_float_offset", "mnn19_lt_to_le", "mnn20_lt_to_gt"):
        module = dm.mutate(graph_mod, CATALOG[name], lower, original=original).module
        keys[name] = (dm.structural_key(module), dm.semantic_key(module))
    assert keys["mnn18_lt_float_offset"][0] != keys["mnn19_lt_to_le"][0]
    assert keys["mnn18_lt_float_offset"][1] == keys["mnn19_lt_to_le"][1]
    assert len({keys["mnn19_lt_to_le"][1], keys["mnn20_lt_to_gt"][1], dm.semantic_key(original)}) == 3


def test_float_offset_rewrites_to_float_comparison(conditional_outcomes):
    site = conditional_outcomes["mnn18_lt_float_offset"]["manifest"]["sites"][0]
    assert 'T.Cast("float32"' in site["after"] and "0.5" in site["after"] and "<" in site["before"]


# ----- model level ------------------------------------------------------------------------------------


MODEL_ENTRIES = [n for n, s in CATALOG.items() if s["level"] == "model"]


def _expected_model_sites(graph_mod, spec) -> int:
    counts = op_counts(graph_mod)
    if spec["operator"] in ("gaussian_fuzz", "weight_shuffle", "neuron_effect_block"):
        return counts["relax.nn.conv2d"] + counts["relax.matmul"]  # every layer here has a constant weight
    if spec["operator"] in ("activation_inversion", "activation_removal"):
        return counts["relax.nn.relu"] + sum(1 for c in call_tir_callees(graph_mod) if c.startswith("minimum"))
    if spec["operator"] == "layer_deactivation":
        shapes_in = calls_with_shape(graph_mod, ["relax.nn.conv2d", "relax.matmul"], 0)
        weights = calls_with_shape(graph_mod, ["relax.nn.conv2d", "relax.matmul"], 1)
        # conv 3x3 pad 1 keeps H, W: same shape iff in == out channels; matmul iff the weight is square
        return sum(
            1
            for s, w in zip(shapes_in, weights, strict=True)
            if (len(w) == 4 and w[0] == s[1]) or (len(w) == 2 and w[0] == w[1])
        )
    raise AssertionError(spec)


@pytest.mark.parametrize("name", MODEL_ENTRIES)
def test_model_entry(name, graph_mod, original, x, y0):
    spec = CATALOG[name]
    expected = _expected_model_sites(graph_mod, spec)
    m = dm.mutate(graph_mod, spec, lower, original=original)
    mf = m.manifest
    assert mf["candidates"] == expected and mf["applied"] == expected and expected > 0, mf
    assert not mf["equivalent"]
    again = dm.mutate(graph_mod, spec, lower)
    assert dm.structural_key(again.module) == dm.structural_key(m.module)  # deterministic
    assert again.manifest["sites"] == mf["sites"]
    y = run(m.module, x)
    assert not np.allclose(y, y0)
    if spec["operator"] == "activation_removal":
        assert "relax.nn.relu" not in op_counts(dm.OPERATORS[spec["operator"]](spec).apply(graph_mod)[0])


def test_model_seed_changes_the_mutant(graph_mod):
    a = dm.mutate(graph_mod, {"operator": "gaussian_fuzz", "seed": 1}, lower).module
    b = dm.mutate(graph_mod, {"operator": "gaussian_fuzz", "seed": 2}, lower).module
    assert not dm.is_equivalent(a, b) and dm.structural_key(a) != dm.structural_key(b)


def test_neuron_effect_block_zeroes_exactly_the_reported_channels(graph_mod):
    from deltamut.mutations import _relax

    spec = {"operator": "neuron_effect_block", "fraction": 0.25, "seed": 3, "sites": [[0, 0]]}
    op = dm.OPERATORS["neuron_effect_block"](spec)
    mutated, report = op.apply(graph_mod)
    w_before = _relax.layer_weights(graph_mod)[0].array
    w_after = _relax.layer_weights(mutated)[0].array
    zero = [c for c in range(w_after.shape[0]) if not w_after[c].any()]
    assert len(zero) == 2 and f"zeroed output neurons {zero}" in report.sites[0]["after"]
    keep = [c for c in range(w_after.shape[0]) if c not in zero]
    assert np.array_equal(w_after[keep], w_before[keep])


# ----- input level ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo():
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return Image.open(path).convert("RGB").resize((128, 160))


@pytest.mark.parametrize("name", [n for n, s in CATALOG.items() if s["level"] == "input"])
def test_input_entry(name, photo, graph_mod, original):
    spec = CATALOG[name]
    a = dm.transform_image(photo, spec, seed=7)
    b = dm.transform_image(photo, spec, seed=7)
    assert a.size == photo.size and a.mode == photo.mode
    arr0, arr = np.asarray(photo, dtype=np.float64), np.asarray(a, dtype=np.float64)
    assert np.array_equal(arr, np.asarray(b))  # seeded: same image, same seed, same output
    assert np.abs(arr - arr0).mean() > 1.0  # and it really changes the picture
    if spec["operator"] == "brightness":
        assert arr.mean() > arr0.mean()
    if spec["operator"] == "contrast":
        assert arr.std() < arr0.std()
    if spec["operator"] == "blur":
        assert np.abs(np.diff(arr, axis=1)).mean() < np.abs(np.diff(arr0, axis=1)).mean()
    if spec["operator"] == "gaussian_noise":
        c = dm.transform_image(photo, spec, seed=8)
        assert not np.array_equal(arr, np.asarray(c))


def test_input_entry_keeps_the_module(graph_mod, original):
    m = dm.mutate(graph_mod, CATALOG["input_jpeg"], lower, original=original)
    assert m.manifest["level"] == "input" and m.manifest["equivalent"]


def test_manifest_is_json_and_diff_names_the_change(graph_mod, original):
    m = dm.mutate(graph_mod, CATALOG["mnn10_add_to_subtract"], lower)
    json.dumps(m.manifest)
    diff = dm.ir_diff(dm.ir_text(original), dm.ir_text(m.module), "mnn10_add_to_subtract")
    assert diff.startswith("--- original\n+++ mnn10_add_to_subtract")
    assert any(line.startswith("+") and " - " in line for line in diff.splitlines())


@pytest.mark.slow
def test_every_entry_builds_and_runs(graph_mod, original, x, tmp_path):
    """Every model-changing catalog entry gives a module that compiles and runs (conditionals isolated)."""
    import tvm

    (tmp_path / "child.py").write_text(_CHILD)
    np.save(tmp_path / "x.npy", x)
    names = []
    for name, spec in CATALOG.items():
        if spec["level"] in ("graph", "kernel", "model"):
            (tmp_path / f"{name}.json").write_text(tvm.ir.save_json(dm.mutate(graph_mod, spec, lower).module))
            names.append(name)
    status = run_isolated(tmp_path, names, timeout=600)
    bad = {
        n: s for n, s in status.items() if s != "ok" and CATALOG[n]["category"] != "Conditional Statement Operations"
    }
    assert not bad, bad


# ----- sweeps: one mutant per site ----------------------------------------------------------------------


def test_a_sweep_census_counts_the_sites_and_each_one_site_mutant_changes_one(graph_mod, original):
    from deltamut.mutations.sweep import census, choose_sites, site_spec, split_site_mutant

    spec = {**CATALOG["mnn10_add_to_subtract"], "sites": "each"}
    full = dm.mutate(graph_mod, {**spec, "sites": "all"}, lower).manifest
    found = census(graph_mod, spec)
    assert found["candidates"] == full["candidates"] and found["chosen"] == list(range(full["candidates"]))
    depths = [s["depth"] for s in found["sites"]]
    assert depths == sorted(depths) and depths[0] == 0 and depths[-1] == 1  # program order, first to last
    for k in (0, found["candidates"] - 1):
        one = dm.mutate(graph_mod, site_spec(spec, k), lower, original=original).manifest
        assert one["applied"] == 1 and one["sites"][0] == full["sites"][k]
    # kernel level: a site's depth is its kernel's first call in main, so the stores of one kernel share it
    stores = census(original, {"operator": "store_subtract", "sites": "each"})
    by_kernel = {}
    for s in stores["sites"]:
        by_kernel.setdefault(s["function"], set()).add(s["depth"])
    assert all(len(d) == 1 for d in by_kernel.values()) and len({min(d) for d in by_kernel.values()}) > 1
    # a larger sample keeps the sites of a smaller one, and their specs (a mutate job's params): growing a sweep
    # reruns none of its mutants; names round-trip
    assert set(choose_sites({"sample": 3, "seed": 1}, 40)) <= set(choose_sites({"sample": 7, "seed": 1}, 40))
    assert site_spec({**spec, "sites": {"sample": 3}}, 5) == site_spec({**spec, "sites": {"sample": 7}}, 5)
    assert split_site_mutant("mnn01_sites.site12") == ("mnn01_sites", 12) and split_site_mutant("mnn01") is None
