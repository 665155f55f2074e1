"""Kernel-mode localisation on real TVM builds, with planted faults whose answer is known in advance.

- A kernel-level mutant at one site (store_subtract at one store of one PrimFunc): the root kernel is the
  PrimFunc the mutant's manifest names, found by replaying each kernel of the mutant on the original's inputs;
  every other kernel adds no error by itself; the kernel is named by the ONNX node whose value it computes.
- A step of an optimisation that flips labels, found by bisection: fast-math reassociates `(x + 1e8) - 1e8`
  back to `x` where IEEE float32 gives 0, which moves top-1; it needs fusion (both operations in one kernel)
  and LLVM's optimiser, so the three steps are named together and constant folding (a no-op here) is skipped.
- A mutant masked downstream: a convolution whose outputs are all negative feeds a ReLU (unfused, so each is a
  kernel of its own); subtracting from the convolution's stores changes its output, and the ReLU clips it
  back to zero, so the effect starts at the convolution, is masked at the ReLU and never reaches the logits.
- Named mode: a graph-level mutant at one known node is rooted at that ONNX node; the fast-math trap, marked,
  no longer flips (a fusion-dependent fault), and named mode says so.
- Failures: a planted segfault in one kernel is localised to the kernel each rerun dies in, and NaN logits to
  the first kernel that writes a NaN.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from deltamut.compiler.build import build_library
from deltamut.compiler.importer import import_onnx
from deltamut.compiler.optconfig import OptConfig
from deltamut.compiler.passes import lower, optimise_graph
from deltamut.defaults import section_default
from deltamut.localise.bisect import TIR_PASSES
from deltamut.localise.profile import kernel_table, propagation
from deltamut.mutations.engine import mutate

EXTENDED = section_default("optimisations")["extended"]
REPO = Path(__file__).resolve().parents[2]


def _builds(onnx: Path, opt: OptConfig, spec: dict, out: Path) -> tuple[Path, Path, dict]:
    graph = optimise_graph(import_onnx(onnx), opt)
    mutant = mutate(graph, spec, lambda g: lower(g, opt))
    original, mutated = out / "original.so", out / "mutant.so"
    build_library(lower(graph, opt), {"kind": "llvm"}, opt, original)
    build_library(mutant.module, {"kind": "llvm"}, opt, mutated)
    return original, mutated, mutant.manifest


def _images(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, 3, size, size)).astype(np.float32)


@pytest.fixture(scope="module")
def one_site(tmp_path_factory, small_onnx):
    out = tmp_path_factory.mktemp("one_site")
    opt = OptConfig.from_dict("extended", EXTENDED)
    original, mutated, manifest = _builds(
        small_onnx, opt, {"operator": "store_subtract", "delta": 0.25, "sites": [[3, 3]]}, out)
    ids = [f"img{i}" for i in range(3)]
    table, logits = kernel_table(original, mutated, _images(3, 16), ids, small_onnx)
    return table, propagation(table, logits), manifest


def test_kernel_mode_names_the_mutated_kernel(one_site):
    table, profile, manifest = one_site
    [site] = manifest["sites"]
    assert profile["root_kernel"] == site["function"] and profile["root_by"] == "replay"
    # the mutated kernel is the only one that adds error by itself; the ones after it only carry it
    local = table[table["local_departs"]]
    assert set(local["kernel"]) == {site["function"]} and len(local) == 3  # once per image
    after = table[table["index"] > profile["root_index"]]
    assert (after["local_abs"] == 0).all() and after["propagated_departs"].all()
    before = table[table["index"] < profile["root_index"]]
    assert (before["propagated_abs"] == 0).all()


def test_the_root_kernel_is_named_by_its_onnx_node(one_site):
    _, profile, manifest = one_site
    # the mutated store is the bias add of the second convolution, fused with its ReLU and the residual add:
    # the kernel's output is the residual Add's (conftest.small_cnn: x + relu(conv2(x)))
    assert manifest["sites"][0]["function"].endswith("relu_add2")
    assert (profile["root_onnx_op_type"], profile["root_onnx_node"]) == ("Add", "node_add")
    assert profile["reaches_output"] == 3 and profile["masked"] == []


class _Masked(nn.Module):
    """conv (every output negative) -> ReLU (zero) + x -> mean -> linear: the ReLU masks any change below it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(3, 4)
        with torch.no_grad():
            self.conv.weight.mul_(0.01)
            self.conv.bias.fill_(-50.0)

    def forward(self, x):
        return self.fc((torch.relu(self.conv(x)) + x).mean(dim=(2, 3)))


def test_an_effect_clipped_by_a_later_relu_is_reported_masked_there(tmp_path):
    torch.manual_seed(0)
    onnx = tmp_path / "masked.onnx"
    torch.onnx.export(_Masked().eval(), (torch.zeros(1, 3, 8, 8),), str(onnx), dynamo=True, external_data=False,
                      opset_version=18, input_names=["input"], output_names=["logits"])
    opt = OptConfig.from_dict("unfused", {"fuse": False})
    # site 0: the convolution's bias add (unfused, a kernel of its own after the bias-free conv2d), so every
    # output of the ONNX Conv moves by -1
    original, mutated, manifest = _builds(onnx, opt, {"operator": "store_subtract", "delta": 1.0,
                                                      "sites": [[0, 0]]}, tmp_path)
    table, logits = kernel_table(original, mutated, _images(2, 8), ["p", "q"], onnx)
    profile = propagation(table, logits)
    assert profile["root_kernel"] == manifest["sites"][0]["function"]
    assert profile["root_onnx_op_type"] == "Conv"  # the conv2d kernel before it computes no ONNX tensor
    assert profile["reaches_output"] == 0 and profile["masked"] == ["p", "q"] and profile["flipped"] == []
    assert all(e["masked_at"].split(" = ONNX ")[1].startswith("Relu") for e in profile["per_image"])


class _FastMathTrap(nn.Module):
    """Three logits `(|mean| + 1e8) - 1e8`, which IEEE float32 rounds to 0 for a mean below 4, beside a constant
    1e-3: top-1 is the constant (class 3) in exact arithmetic's float32 rounding; reassociating the
    subtraction (LLVM's fast-math, where the add and the subtract sit in one kernel and its optimiser runs)
    gives the mean back, and top-1 moves to a channel."""

    def forward(self, x):
        y = x.mean(dim=(2, 3)).abs()
        return torch.cat([(y + 1.0e8) - 1.0e8, torch.full_like(y[:, :1], 1e-3)], dim=1)


def _trap(tmp_path: Path) -> Path:
    onnx = tmp_path / "trap.onnx"
    torch.onnx.export(_FastMathTrap().eval(), (torch.zeros(1, 3, 16, 16),), str(onnx), dynamo=True,
                      external_data=False, opset_version=18, input_names=["input"], output_names=["logits"])
    return onnx


def test_bisection_names_the_interacting_steps_that_flip_a_label(tmp_path):
    from deltamut.compiler.importer import import_onnx
    from deltamut.localise.bisect import Bisector, bisect

    onnx = _trap(tmp_path)
    images = _images(3, 16)  # channel means below 4: 0 in float32 after + 1e8 - 1e8

    def flips(logits: np.ndarray) -> dict:
        moved = int((logits.argmax(axis=1) != 3).sum())
        return {"holds": moved >= 2, "flipped": moved}

    spec = {"llvm": {"fast-math": True}}  # and the defaults: fold constants, fuse, LLVM -O3
    result = bisect(Bisector(import_onnx(onnx), spec, {"kind": "llvm"}, images, flips, tmp_path / "bisect"))
    assert result["result"] == "found", result
    # folding constants leaves this IR as it was (no constant-only expression): skipped, no build spent on it
    assert result["skipped_noop"] == ["fold_constants"]
    # the shortest failing prefix ends with LLVM -O3; alone it flips nothing, and so does either set without
    # fusion (the add and the subtract in two kernels) or without fast-math: the three are named together
    assert result["culprits"] == ["fuse", "fast-math", "llvm-opt"], result["trials"]
    judged = {t["why"]: t["detail"]["flipped"] for t in result["trials"]}
    assert judged["the full configuration"] == 3 and judged["every step off"] == 0
    assert judged["llvm-opt alone"] == judged["without fast-math"] == judged["without fuse"] == 0
    # the optimising TIR passes of tvm.compile were steps of the search too, and none is needed for the flips
    assert [s for s in result["searched"] if s in TIR_PASSES] == list(TIR_PASSES)
    assert not any("error" in t for t in result["trials"])


class _DriftTrap(nn.Module):
    """The fast-math trap at a scale where it moves numbers, not labels: `(|mean| + 1e3) - 1e3` rounds each
    mean to float32's step at 1e3 (6e-5), which reassociation under fast-math skips, beside a constant 10 that
    stays top-1 either way."""

    def forward(self, x):
        y = x.mean(dim=(2, 3)).abs()
        return torch.cat([(y + 1.0e3) - 1.0e3, torch.full_like(y[:, :1], 10.0)], dim=1)


def test_bisection_of_a_drift_names_the_steps_that_move_the_logits(tmp_path):
    """A compiler pair that flips no label but drifts (numeric_drift against ONNX Runtime): bisection judges
    each trial build's logits against the reference's recorded ones (half the full build's departure on half
    the witnesses) and names the same three interacting steps as the label trap, fuse, fast-math and LLVM -O3;
    no reproducer is cut (those are for flips) and named mode is not run."""
    import onnxruntime as ort
    import pandas as pd

    from deltamut.compiler.serialize import save_module
    from deltamut.devices.tvm_backend import TvmBackend
    from deltamut.localise.bisect_stage import bisect_stage
    from deltamut.runner.outputs import Outputs, save_outputs

    onnx = tmp_path / "drift.onnx"
    torch.onnx.export(_DriftTrap().eval(), (torch.zeros(1, 3, 16, 16),), str(onnx), dynamo=True,
                      external_data=False, opset_version=18, input_names=["input"], output_names=["logits"])
    x, ids = _images(4, 16), [f"i{k}" for k in range(4)]
    np.savez(tmp_path / "inputs.npz", x=x, ids=np.array(ids))
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    reference = np.concatenate([session.run(None, {"input": i[None]})[0] for i in x])
    save_outputs(tmp_path / "reference.npz", Outputs(ids=np.array(ids), logits=reference,
                                                     latency_ms=np.full((4, 1), np.nan), status=np.full(4, "ok"),
                                                     error=np.full(4, "")))
    spec = {"llvm": {"fast-math": True}}
    opt = OptConfig.from_dict("fm", spec)
    imported = import_onnx(onnx)
    save_module(imported, tmp_path / "imported.json")
    build_library(lower(optimise_graph(imported, opt), opt), {"kind": "llvm"}, opt, tmp_path / "fm.so")
    fm = TvmBackend({"lib": str(tmp_path / "fm.so")})
    built = np.concatenate([fm(i[None]) for i in x])
    fm.close()
    err = np.abs(built - reference).max(axis=1)
    assert (built.argmax(1) == 3).all() and (reference.argmax(1) == 3).all() and (err > 1e-6).all(), err
    pd.DataFrame({"a": "tvm/fm/original/cpu", "b": "onnxruntime", "image": ids, "status_a": "ok", "status_b": "ok",
                  "top1_agree": True, "top1_b": 3, "max_abs_err": err}).to_parquet(tmp_path / "per_image.parquet")
    inputs = {k: str(tmp_path / v) for k, v in (("imported", "imported.json"), ("onnx", "drift.onnx"),
                                                 ("inputs", "inputs.npz"), ("per_image", "per_image.parquet"),
                                                 ("reference", "reference.npz"))}
    outputs = {k: str(tmp_path / "out" / v) for k, v in (("record", "bisect.json"), ("ir", "ir"),
                                                          ("bundle", "bundle"), ("nodes", "nodes.parquet"))}
    (tmp_path / "out").mkdir()
    record = bisect_stage(inputs=inputs, outputs=outputs, pair={"a": "tvm/fm/original/cpu", "b": "onnxruntime"},
                          spec=spec, target={"kind": "llvm"},
                          settings={"images": 8, "tolerance": 1e-6, "timeout_s": 600}, log=tmp_path / "log")
    assert record["predicate"]["kind"] == "drift" and record["status"] == "ok", record
    assert record["result"] == "found" and record["culprits"] == ["fuse", "fast-math", "llvm-opt"], record["trials"]
    judged = {t["why"]: len(t["detail"]["moved"]) for t in record["trials"]}
    assert judged["the full configuration"] == 4 and judged["every step off"] == 0
    assert record["bundle"]["result"] == "not_made" and record["named"]["status"] == "not_probed"


def test_a_tir_culprit_keeps_the_kernels_before_and_after_its_pass(tmp_path, small_onnx):
    """A TIR pass acts inside tvm.compile, after the lowered module every trial shares: for a TIR culprit the
    bisection writes the kernels as the pass receives them and as it returns them. StorageRewrite merges the
    small CNN's temporary buffers, so the two differ."""
    from deltamut.localise.bisect import Bisector, steps_of

    b = Bisector(import_onnx(small_onnx), EXTENDED, {"kind": "llvm"}, _images(1, 16), lambda _: {}, tmp_path)
    files = b.dump_around(steps_of(EXTENDED), "tirx.StorageRewrite")
    before, after = (Path(files[side]).read_text() for side in ("before", "after"))
    assert Path(files["after"]).name == "after_tirx.StorageRewrite.py" and "T.prim_func" in before
    assert before != after and not (tmp_path / "tir" / "lib.so").exists()


def test_a_tir_step_switched_off_does_not_run_in_the_build(small_onnx):
    """A TIR step is off in a trial build: with_only puts every TIR pass it does not enable in the
    PassContext's disabled_pass, and tvm.compile's pipeline then skips exactly those (seen by an instrument)."""
    import tvm
    from tvm.ir.instrument import pass_instrument

    from deltamut.compiler.build import schedule
    from deltamut.compiler.targets import make_target
    from deltamut.localise.bisect import with_only

    spec = with_only(EXTENDED, [*EXTENDED.get("passes", []), "fuse", "tirx.UnrollLoop"])
    assert set(spec["disabled_pass"]) == set(TIR_PASSES) - {"tirx.UnrollLoop"}
    ran: list[str] = []

    @pass_instrument
    class Seen:
        def run_before_pass(self, mod, info):
            ran.append(info.name)

    opt = OptConfig.from_dict("trial", spec)
    mod = lower(optimise_graph(import_onnx(small_onnx), opt), opt)
    target = make_target({"kind": "llvm"}, opt.llvm)
    with tvm.transform.PassContext(opt_level=3, instruments=[Seen()], disabled_pass=list(opt.disabled_pass)):
        tvm.compile(schedule(mod, target, {"kind": "llvm"}, opt)[0], target)
    assert "tirx.UnrollLoop" in ran and not set(ran) & (set(TIR_PASSES) - {"tirx.UnrollLoop"})
    assert "tirx.MakePackedAPI" in ran  # the lowering passes still run


@pytest.mark.slow
def test_the_pipeline_bisects_an_optimisation_and_profiles_a_mutant(tmp_path, labelled_photos):
    """Both localisation rules in a study of the trap model on real photos, their findings selected by verdict
    once compare has run: the `fm` build flips every photo against ONNX Runtime, and its bisection names the
    same three steps; a one-store mutant's profile is rooted at the kernel its manifest names; a mutant whose
    verdict the selection leaves out is not probed; the study summary lists both probes."""
    photos, labels = labelled_photos
    work = tmp_path / "work"
    work.mkdir()
    study = {
        "models": {"trap": {"source": "onnx", "path": str(_trap(tmp_path)), "input_size": 16,
                            "mutants": ["one_store", "faint"]}},
        "dataset": {"images": str(photos), "labels": str(labels), "limit": 3},
        "frameworks": ["onnxruntime"],
        "optimisations": {"fm": {"llvm": {"fast-math": True}}},
        "mutations": {"one_store": {"operator": "store_subtract", "delta": 0.5, "sites": [[0, 0]]},
                      "faint": {"operator": "store_scale", "eps": 2.0**-20, "sites": [[0, 0]]}},
        "targets": {"x86_64": {"kind": "llvm"}, "x86_nofma": {"kind": "llvm", "mattr": ["-fma"]}},
        "devices": {"cpu": {"target": "x86_64"}, "nofma": {"target": "x86_nofma"}},
        # findings selected by kind, verdict and variant once compare has run (nothing is named up front): the
        # compiler pairs (top1_flip: fast-math flips every photo on either device), the device pair (within
        # noise: the targets differ in FMA) and one_store on cpu (numeric_drift); not faint (within_noise, but
        # no pattern names it) nor anything of a mutant on nofma
        "localise": {"kinds": ["mutant", "compiler", "device"],
                     "verdicts": ["top1_flip", "numeric_drift", "within_noise"],
                     "variants": ["tvm/fm/original/*", "tvm/fm/one_store/cpu"]},
    }
    (work / "study.yaml").write_text(yaml.safe_dump(study))
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
                          "--configfile", str(work / "study.yaml"), "--cores", "2"],
                         capture_output=True, text=True, cwd=work, timeout=1200)
    assert run.returncode == 0, run.stderr[-4000:]
    import pandas as pd

    verdicts = pd.read_parquet(work / "results/trap/compare/per_pair.parquet").set_index(["kind", "a"])["verdict"]
    assert {k: verdicts[k] for k in [("compiler", "tvm/fm/original/cpu"), ("mutant", "tvm/fm/one_store/cpu"),
                                     ("mutant", "tvm/fm/faint/cpu"), ("device", "tvm/fm/original/nofma")]} == {
        ("compiler", "tvm/fm/original/cpu"): "top1_flip", ("mutant", "tvm/fm/one_store/cpu"): "numeric_drift",
        ("mutant", "tvm/fm/faint/cpu"): "within_noise", ("device", "tvm/fm/original/nofma"): "within_noise"}
    assert not (work / "results/trap/tvm/fm/faint/localise").exists()
    assert not (work / "results/trap/tvm/fm/one_store/localise/nofma").exists()
    # the device pair, kernel by kernel (rule localise_device): the trap multiplies nothing it adds, so FMA
    # changes at most an ulp (compare: within_noise), below the probe's tolerance: its own runs do not confirm
    # that the logits move, and no kernel is named
    device = json.loads((work / "results/trap/tvm/fm/original/localise/nofma/against/cpu/profile.json")
                        .read_text())
    assert (device["a"], device["b"]) == ("tvm/fm/original/nofma", "tvm/fm/original/cpu")
    assert device["status"] == "ok" and device["predicate"]["kind"] == "drift"
    assert not device["confirmed"]["holds"] and device["root"] is None
    record = json.loads((work / "results/trap/tvm/fm/localise/cpu/bisect.json").read_text())
    assert record["status"] == "ok" and record["predicate"]["flipped_in_table"] == 3, record.get("reason")
    assert record["culprits"] == ["fuse", "fast-math", "llvm-opt"]
    assert list((work / "results/trap/tvm/fm/localise/cpu/bisect").glob("*/lowered.py"))  # the IR of each build
    bundle = work / "results/trap/tvm/fm/localise/cpu/bundle"
    assert record["bundle"]["result"] == "found" and record["bundle"]["nodes_after"] == 2, record["bundle"]
    repro = subprocess.run([sys.executable, str(bundle / "repro.py")], capture_output=True, text=True, timeout=300)
    assert repro.returncode == 1, repro.stdout + repro.stderr[-2000:]
    manifest = json.loads((work / "results/trap/tvm/fm/one_store/manifest.json").read_text())
    profile = json.loads((work / "results/trap/tvm/fm/one_store/localise/cpu/profile.json").read_text())
    assert profile["status"] == "ok" and profile["root_kernel"] == manifest["sites"][0]["function"]
    # named mode under the culprit steps: with the add's output marked, fusion no longer puts the add and the
    # subtract in one kernel, and the labels stop flipping; the kernel-level mutant's sites do not carry over
    assert record["named"]["status"] == "ok" and record["named"]["vanished"], record["named"]
    assert profile["named"]["status"] == "not_probed" and "kernel-level" in profile["named"]["reason"]
    summary = (work / "results/summary.md").read_text().split("## Localisation")[1]
    assert "fuse, fast-math, llvm-opt" in summary and "one_store" in summary and "(2 of " in summary
    assert "vanished when every tensor is an output" in summary and "faint" not in summary


def test_the_bundle_reduces_the_trap_to_its_add_and_subtract_and_repro_exits_on_the_faulty_build(tmp_path):
    """The fast-math trap's reproducer: the smallest window whose fast-math build flips labels inside the rest
    of the model is the add and the subtract; the bundle's own `repro.py` exits 1 on that build and 0 on the
    control (every step off). The first witness does not flip (one channel's mean is 5, so it is top-1 both
    in float32 and reassociated) and the predicate is 2 flips of 3: a reducer judging the first input alone
    would find nothing."""
    import onnx

    from deltamut.localise.bisect import with_only
    from deltamut.localise.bundle import CONTROL, FAULTY, make_bundle

    path = _trap(tmp_path)
    images = _images(3, 16)
    images[0, 1] += 5.0  # channel 1's mean near 5: (5 + 1e8) - 1e8 is 8 in float32, 5 reassociated: no flip
    predicate = {"images": ["calm", "a", "b"], "k": 2, "reference_top1": [1, 3, 3]}
    spec = {"llvm": {"fast-math": True}}
    builds = {FAULTY: with_only(spec, ["fuse", "fast-math", "llvm-opt"]), CONTROL: with_only(spec, [])}
    out = tmp_path / "bundle"
    result = make_bundle(onnx.load(str(path)), images, predicate, builds, {"kind": "llvm"}, out, {"finding": "trap"})
    assert result["result"] == "found", result["trials"]
    assert json.loads((out / "predicate.json").read_text())["ops"] == ["Add", "Sub"]
    assert result["nodes_after"] == 2 < result["nodes_before"]
    assert (out / "test_data_set_2" / "input_0.pb").is_file() and (out / "rest.onnx").is_file()

    def repro(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(out / "repro.py"), "--json", *args], capture_output=True,
                              text=True, cwd=tmp_path, timeout=300)

    faulty, control = repro(), repro("--build", "control")
    assert faulty.returncode == 1, faulty.stderr[-2000:]
    assert json.loads(faulty.stdout)["flipped"] == ["a", "b"]  # the calm first image does not flip
    assert control.returncode == 0, control.stderr[-2000:]


def test_named_mode_names_the_onnx_node_a_graph_mutant_changed(tmp_path, small_onnx):
    """A graph-level mutant at one known node: the importer's third `relax.add` (site 2; the first two are
    the convolutions' bias adds) is small_cnn's residual `x + relu(conv2(x))`, ONNX node `node_add`. Marked,
    the mutant's tensors depart from the original's first at that node, whose inputs do not; it is the only
    root on every image and grows the error most; the nodes before it are exact."""
    import onnx

    from deltamut.localise.named import build_marked, marked_logits, named_mode, run_marked

    model = onnx.load(str(small_onnx))
    mutation = {"operator": "replace_op", "from": "relax.add", "to": "relax.subtract", "sites": [[2, 2]]}
    original = build_marked(model, EXTENDED, {"kind": "llvm"}, tmp_path, name="original")
    mutant = build_marked(model, EXTENDED, {"kind": "llvm"}, tmp_path, mutation, name="mutant")
    assert [s["after"] for s in mutant["sites"]] == ["relax.subtract(lv9, lv13)"]
    images, ids = _images(3, 16), ["p", "q", "r"]
    ref = run_marked(original["lib"], original["names"], images)
    values = run_marked(mutant["lib"], mutant["names"], images)
    moved = bool((marked_logits(model, values) != marked_logits(model, ref)).any())
    table, record = named_mode(model, values, ref, ref, ids, {"holds": moved}, 1e-6)
    assert (record["root_node"], record["root_op_type"], record["root_images"]) == ("node_add", "Add", 3)
    assert {e["root_node"] for e in record["per_image"]} == {"node_add"}
    assert record["top_growth"][0]["node"] == "node_add" and not record["vanished"]
    order = table.loc[table["node"] == "node_add", "order"].iloc[0]
    assert (table.loc[table["order"] < order, "err_rel"] == 0).all()
    assert table.loc[table["order"] >= order, "departs"].all()


def test_named_mode_reports_that_marking_made_a_fusion_dependent_fault_vanish(tmp_path):
    """The fast-math trap needs the add and the subtract in one kernel; with the add's output marked, the
    marked build computes the add in a kernel of its own, so LLVM cannot fold `(x + 1e8) - 1e8` and the
    labels no longer flip: named mode says the disagreement vanished instead of naming a node."""
    import onnx

    from deltamut.localise.bisect import with_only
    from deltamut.localise.named import build_marked, marked_logits, named_mode, run_marked
    from deltamut.localise.splice import tensor_values

    model = onnx.load(str(_trap(tmp_path)))
    images, ids = _images(3, 16), ["a", "b", "c"]
    spec = {"llvm": {"fast-math": True}}
    faulty = build_marked(model, with_only(spec, ["fuse", "fast-math", "llvm-opt"]), {"kind": "llvm"}, tmp_path,
                          name="faulty")
    control = build_marked(model, with_only(spec, []), {"kind": "llvm"}, tmp_path, name="control")
    values = run_marked(faulty["lib"], faulty["names"], images)
    flipped = int((marked_logits(model, values).argmax(axis=1) != 3).sum())
    table, record = named_mode(model, values, tensor_values(model, [x[None] for x in images]),
                               run_marked(control["lib"], control["names"], images), ids,
                               {"holds": flipped >= 2, "flipped": flipped}, 1e-6)
    assert record["vanished"] and record["marked_holds"]["flipped"] == 0
    assert record["root_node"] is None and not table["departs"].any()


def test_a_pattern_mutant_changes_the_same_sites_in_the_marked_model(tmp_path, small_onnx):
    """ReLU6 (the importer's maximum/minimum pair of an ONNX Clip) to sigmoid, where the Clip's input is itself
    a marked output: the rewrite must read that input through the mutator (it failed with a null node when it
    read the original var), and it changes the sites it changes in the unmarked model."""
    import onnx

    from deltamut.compiler.importer import import_onnx
    from deltamut.localise.named import mark_all

    marked, _ = mark_all(onnx.load(str(small_onnx)))
    onnx.save(marked, str(tmp_path / "marked.onnx"))
    spec = {"operator": "replace_op", "from": ["relax.nn.relu", "pattern.relu6"], "to": "relax.sigmoid"}
    sites = [mutate(import_onnx(p), spec, lambda g: g).manifest["sites"]
             for p in (small_onnx, tmp_path / "marked.onnx")]
    assert [s["op"] for s in sites[0]] == ["pattern.relu6", "relax.nn.relu"]
    assert sites[0] == sites[1]


def _out_of_bounds(mod, kernel: str):
    """`mod` with every store of PrimFunc `kernel` moved 2**28 rows past its buffer: a segfault when it runs."""
    import tvm_ffi
    from tvm import tirx

    from deltamut.mutations._tir import map_primfuncs

    def far(store):
        return tirx.BufferStore(store.buffer, store.value, [store.indices[0] + (1 << 28), *store.indices[1:]])

    return map_primfuncs(mod, lambda name, f: tvm_ffi.structural_map(f, [(tirx.BufferStore, far)])
                         if name == kernel else f)


@pytest.fixture()
def failing_pair(tmp_path, small_onnx):
    """The small CNN unfused (one kernel per operator), its per-image table with the variant failing on three
    images, and the localise stage's files; returns a function that plants a build and runs the stage."""
    from deltamut.localise.stage import localise_stage

    opt = OptConfig.from_dict("unfused", {"fuse": False})
    lowered = lower(optimise_graph(import_onnx(small_onnx), opt), opt)
    build_library(lowered, {"kind": "llvm"}, opt, tmp_path / "original.so")
    ids = ["p", "q", "r", "s"]
    np.savez(tmp_path / "inputs.npz", x=_images(4, 16), ids=np.array(ids))
    (tmp_path / "deploy.json").write_text(json.dumps({"status": "ok"}))

    def run(module, status: str) -> dict:
        build_library(module, {"kind": "llvm"}, opt, tmp_path / "mutant.so")
        import pandas as pd

        pd.DataFrame({"a": "M", "b": "O", "image": ids, "status_a": [status] * 3 + ["ok"], "status_b": "ok",
                      "top1_agree": [False] * 3 + [True], "top1_b": 0, "max_abs_err": 0.0}
                     ).to_parquet(tmp_path / "per_image.parquet")
        inputs = {"mutant_lib": tmp_path / "mutant.so", "original_lib": tmp_path / "original.so",
                  "mutant_info": tmp_path / "deploy.json", "onnx": small_onnx, "inputs": tmp_path / "inputs.npz",
                  "per_image": tmp_path / "per_image.parquet"}
        outputs = {k: tmp_path / f"{k}.{ext}" for k, ext in
                   (("profile", "json"), ("kernels", "parquet"), ("nodes", "parquet"), ("plot", "png"),
                    ("bundle", "d"))}
        return localise_stage(inputs={k: str(v) for k, v in inputs.items()},
                              outputs={k: str(v) for k, v in outputs.items()}, pair={"a": "M", "b": "O"},
                              settings={"images": 8, "tolerance": 1e-6, "timeout_s": 240},
                              log=tmp_path / "log.txt",
                              rebuild={"optimisation": {"fuse": False}, "target": {"kind": "llvm"},
                                       "level": "kernel"})

    return lowered, run


def test_a_crash_is_localised_to_the_kernel_it_dies_in(failing_pair):
    """A planted segfault in one kernel (the ReLU's stores far out of bounds): the predicate is the symptom
    (crash on at least 2 of the 3 images that crashed in the table; the image that ran is no witness), each
    witness rerun in a child of its own crashes, and the last kernel started before each death is the ReLU,
    named by the ONNX node whose value the original's ReLU kernel computes."""
    lowered, run = failing_pair
    record = run(_out_of_bounds(lowered, "relu"), "crash")
    pred = record["predicate"]
    assert (pred["kind"], pred["symptom"], pred["k"], pred["images"]) == ("symptom", "crash", 2, ["p", "q", "r"])
    assert record["status"] == "ok" and record["confirmed"]["holds"], record
    assert record["confirmed"]["observed"] == {"p": "crash", "q": "crash", "r": "crash"}
    assert (record["root_kernel"], record["root_by"], record["root_images"]) == ("relu", "died in", 3)
    assert (record["root_onnx_op_type"], record["root_onnx_node"]) == ("Relu", "node_relu")


def test_nan_logits_are_localised_to_the_first_kernel_that_writes_a_nan(failing_pair):
    """A store that writes NaN at one site (store_subtract by NaN at site 2: the store of `add2`, the residual
    add, the PrimFuncs counted in name order; a NaN written by either convolution's bias add is clipped away by
    the Clip or the ReLU after it, whose compiled max(x, 0) returns 0 for NaN): the rerun ends with NaN
    logits on every witness, and the first kernel whose output holds a NaN is the residual add."""
    lowered, run = failing_pair
    mutant = mutate(lowered, {"operator": "store_subtract", "delta": float("nan"), "sites": [[2, 2]]},
                    lambda g: g)
    [site] = mutant.manifest["sites"]
    record = run(mutant.module, "nan")
    assert record["predicate"]["symptom"] == "nan" and record["confirmed"]["holds"], record["confirmed"]
    assert (site["function"], record["root_kernel"], record["root_by"]) == ("add2", "add2", "first non-finite")
    assert (record["root_onnx_op_type"], record["root_onnx_node"]) == ("Add", "node_add")


class _Gate(nn.Module):
    """Two logits: the mean of ReLU(conv(x)) and a constant 1e-3. On real inputs the first wins; a mutant that
    pushes every convolution output below zero makes the ReLU return 0, and the constant wins: a label flip on
    every image, planted in one kernel (conv, bias add and ReLU fused)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.conv(x)).mean(dim=(1, 2, 3))[:, None]
        return torch.cat([y, torch.full_like(y, 1e-3)], dim=1)


def test_a_kernel_mutants_bundle_transplants_its_kernel_and_reproduces(tmp_path):
    """A kernel-level mutant at one known site (store_subtract 100 at site 3: the bias add's store in the
    kernel that fuses the ONNX Conv and Relu): kernel mode names that kernel, and the bundle is the window of
    the nodes that kernel computes (Conv, Relu), with the mutated kernel transplanted into the window's own
    build (a window without the Relu fuses another kernel, which the mutant did not change); its repro.py
    exits 1 on that build and 0 on the control (no transplant)."""
    import pandas as pd

    from deltamut.compiler.serialize import save_module
    from deltamut.devices.tvm_backend import TvmBackend
    from deltamut.localise.stage import localise_stage

    torch.manual_seed(0)
    onnx = tmp_path / "gate.onnx"
    torch.onnx.export(_Gate().eval(), (torch.zeros(1, 3, 16, 16),), str(onnx), dynamo=True, external_data=False,
                      opset_version=18, input_names=["input"], output_names=["logits"])
    opt = OptConfig.from_dict("extended", EXTENDED)
    lowered = lower(optimise_graph(import_onnx(onnx), opt), opt)
    mutant = mutate(lowered, {"operator": "store_subtract", "delta": 100.0, "sites": [[3, 3]]}, lambda g: g)
    [site] = mutant.manifest["sites"]
    assert site["function"] == "fused_conv2d_add_relu" and site["before"].startswith("T_add")
    for name, module in (("original", lowered), ("mutant", mutant.module)):
        save_module(module, tmp_path / f"{name}.json")
        build_library(module, {"kind": "llvm"}, opt, tmp_path / f"{name}.so")
    (tmp_path / "manifest.json").write_text(json.dumps(mutant.manifest))
    (tmp_path / "deploy.json").write_text(json.dumps({"status": "ok"}))
    x, ids = _images(4, 16), [f"i{k}" for k in range(4)]
    np.savez(tmp_path / "inputs.npz", x=x, ids=np.array(ids))
    top1 = {}
    for name in ("original", "mutant"):
        run = TvmBackend({"lib": str(tmp_path / f"{name}.so")})
        top1[name] = [int(run(i[None])[0].argmax()) for i in x]
        run.close()
    assert top1 == {"original": [0, 0, 0, 0], "mutant": [1, 1, 1, 1]}
    pd.DataFrame({"a": "M", "b": "O", "image": ids, "status_a": "ok", "status_b": "ok", "top1_agree": False,
                  "top1_b": top1["original"], "max_abs_err": 1.0}).to_parquet(tmp_path / "per_image.parquet")
    inputs = {"mutant_lib": "mutant.so", "original_lib": "original.so", "mutant_module": "mutant.json",
              "original_module": "original.json", "mutant_info": "deploy.json", "manifest": "manifest.json",
              "inputs": "inputs.npz", "per_image": "per_image.parquet", "onnx": "gate.onnx"}
    outputs = {k: str(tmp_path / "out" / v) for k, v in (("profile", "profile.json"), ("kernels", "k.parquet"),
                                                          ("nodes", "n.parquet"), ("plot", "g.png"),
                                                          ("bundle", "bundle"))}
    (tmp_path / "out").mkdir()
    record = localise_stage(inputs={k: str(tmp_path / v) for k, v in inputs.items()}, outputs=outputs,
                            pair={"a": "M", "b": "O"}, settings={"images": 8, "tolerance": 1e-6, "timeout_s": 600},
                            log=tmp_path / "log",
                            rebuild={"optimisation": EXTENDED, "target": {"kind": "llvm"}, "level": "kernel"})
    assert record["root_kernel"] == site["function"] and record["confirmed"]["holds"]
    bundle = record["bundle"]
    assert bundle["result"] == "found" and bundle["kernels"] == [site["function"]], bundle
    predicate = json.loads((Path(outputs["bundle"]) / "predicate.json").read_text())
    assert predicate["ops"] == ["Conv", "Relu"] and bundle["nodes_after"] == 2 < bundle["nodes_before"]
    build = json.loads((Path(outputs["bundle"]) / "faulty" / "build.json").read_text())
    assert build["transplanted"] == ["fused_conv2d_add_relu"]

    def repro(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(Path(outputs["bundle"]) / "repro.py"), *args],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)

    assert repro().returncode == 1 and repro("--build", "control").returncode == 0


def _fma_device_pair(device_pair, small_onnx: Path, optimisation: str):
    """The small CNN built under `optimisation` for the host and for the host without FMA (`mattr: -fma`)."""
    assert " fma " in f" {Path('/proc/cpuinfo').read_text()} ", "the planted difference needs a host with FMA"
    return device_pair(small_onnx, optimisation, {"kind": "llvm"}, {"kind": "llvm", "mattr": ["-fma"]})


MULTIPLY_ADD = {"fused_conv2d_add_maximum_minimum", "fused_conv2d1_add1_relu_add2", "fused_matmul_add3"}


def test_a_device_pair_is_rooted_at_the_kernels_whose_code_differs_across_targets(device_pair, small_onnx):
    """Two host-CPU devices whose targets differ in one planted way: one leaves out FMA (`mattr: -fma`), so
    each kernel that multiplies and adds (both convolutions, the classifier's matmul) rounds otherwise; pooling
    and the mean do not multiply. Each kernel of the no-FMA build replayed on the FMA build's inputs: exactly
    the multiply-add kernels add error by themselves, and the root is the first of them, the stem's
    convolution (named as the ONNX Clip its fused kernel computes); the rest only carry it."""
    record, table = _fma_device_pair(device_pair, small_onnx, "default")
    assert record["status"] == "ok" and record["predicate"]["kind"] == "drift" and record["confirmed"]["holds"]
    assert set(table.loc[table["local_departs"], "kernel"]) == MULTIPLY_ADD
    assert (table.loc[table["kernel"].isin(["max_pool2d", "mean"]), "local_abs"] == 0).all()
    assert (record["root_kernel"], record["root_by"], record["root_index"]) == (
        "fused_conv2d_add_maximum_minimum", "replay", 0)
    assert record["root_onnx_op_type"] == "Clip"


def test_a_device_kernel_whose_weights_are_packed_otherwise_is_replayed_with_its_own_constants(device_pair,
                                                                                               small_onnx):
    """The same pair under `extended`, whose CPU schedule rules pack each convolution's weights at compile time
    for the target's instruction set: the no-FMA build's convolutions refuse the FMA build's packed weights
    (another signature), so each runs on the FMA build's activations with its own constants. Every kernel is
    replayed, and the answer is the planted one: the multiply-add kernels, rooted at the stem."""
    record, table = _fma_device_pair(device_pair, small_onnx, "extended")
    assert table["replay_error"].isna().all(), table["replay_error"]
    own = set(table.loc[table["replayed_with"] == "own constants", "kernel"])
    assert own == {"fused_conv2d_add_maximum_minimum", "fused_conv2d1_add1_relu_add2"}
    assert set(table.loc[table["local_departs"], "kernel"]) == MULTIPLY_ADD
    assert (record["root_kernel"], record["root_by"], record["root_index"]) == (
        "fused_conv2d_add_maximum_minimum", "replay", 0)
