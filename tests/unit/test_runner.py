"""The isolated runner on real backends and real misbehaving TVM libraries (segfault, hang, NaN)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deltamut.runner import RunSettings, load_outputs, run_dataset, save_outputs

# reruns=1: these tests are about one run; reruns have their own tests in test_reruns.py.
FAST = RunSettings(warmup=1, repeats=2, open_timeout_s=60, image_timeout_s=20, max_restarts=3, retries=1,
                   retry_backoff_s=0.1, reruns=1)


def _library(kind: str, path):
    """A real TVM library taking a (1, 3, 16, 16) image to 10 logits that misbehaves on purpose:
    `segv_on_big` writes far out of bounds when the first pixel exceeds 100 (a segfault, on that image
    only); `hang_on_big` loops forever on that image; `nan` returns log(-1 - x^2)."""
    import tvm
    from tvm.script import ir as I
    from tvm.script import relax as R
    from tvm.script import tirx as T

    if kind == "segv_on_big":

        @I.ir_module
        class SegvOnBig:
            @T.prim_func
            def kernel(x: T.Buffer((1, 3, 16, 16), "float32"), y: T.Buffer((1, 10), "float32")):
                for i in range(10):
                    if x[0, 0, 0, 0] > T.float32(100):
                        y[0, i * 200000000 + 200000000] = x[0, 0, 0, i]
                    else:
                        y[0, i] = x[0, 0, 0, i]

            @R.function
            def main(x: R.Tensor((1, 3, 16, 16), "float32")) -> R.Tensor((1, 10), "float32"):
                cls = SegvOnBig
                return R.call_tir(cls.kernel, (x,), out_ty=R.Tensor((1, 10), "float32"))

    elif kind == "hang_on_big":

        @I.ir_module
        class HangOnBig:
            @T.prim_func
            def kernel(x: T.Buffer((1, 3, 16, 16), "float32"), y: T.Buffer((1, 10), "float32")):
                for i in range(10):
                    y[0, i] = x[0, 0, 0, i]
                while y[0, 0] > T.float32(100):
                    y[0, 1] = y[0, 1] + T.float32(1)

            @R.function
            def main(x: R.Tensor((1, 3, 16, 16), "float32")) -> R.Tensor((1, 10), "float32"):
                cls = HangOnBig
                return R.call_tir(cls.kernel, (x,), out_ty=R.Tensor((1, 10), "float32"))

    else:

        @I.ir_module
        class NanAlways:
            @T.prim_func
            def kernel(x: T.Buffer((1, 3, 16, 16), "float32"), y: T.Buffer((1, 10), "float32")):
                for i in range(10):
                    y[0, i] = T.log(T.float32(-1) - x[0, 0, 0, i] * x[0, 0, 0, i])

            @R.function
            def main(x: R.Tensor((1, 3, 16, 16), "float32")) -> R.Tensor((1, 10), "float32"):
                cls = NanAlways
                return R.call_tir(cls.kernel, (x,), out_ty=R.Tensor((1, 10), "float32"))

    # Distinct class names: TVMScript finds a class's source by its qualified name.
    module = {"segv_on_big": "SegvOnBig", "hang_on_big": "HangOnBig"}.get(kind, "NanAlways")
    tvm.compile(locals()[module], tvm.target.Target({"kind": "llvm"})).export_library(str(path))
    return path


@pytest.fixture(scope="module")
def big_inputs(tmp_path_factory):
    """Four images; the third has a first pixel > 100, which triggers the misbehaving libraries."""
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    x[2, 0, 0, 0] = 1000.0
    path = tmp_path_factory.mktemp("big") / "inputs.npz"
    np.savez(path, x=x, ids=np.array(["a", "b", "c", "d"]), labels=np.full(4, -1))
    return path


def test_onnxruntime_and_tvm_agree_with_torch(small_model, small_onnx, small_inputs, tmp_path):
    from deltamut.compiler.build import build_library
    from deltamut.compiler.importer import import_onnx
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.passes import lower

    opt = OptConfig.from_dict("default", {})
    build_library(lower(import_onnx(small_onnx), opt), {"kind": "llvm"}, opt, tmp_path / "lib.so")
    x = np.load(small_inputs)["x"]
    with torch.no_grad():
        expected = small_model(torch.from_numpy(x)).numpy()
    for backend in ({"kind": "onnxruntime", "onnx": str(small_onnx)},
                    {"kind": "tvm", "lib": str(tmp_path / "lib.so"), "target_kind": "llvm"}):
        out = run_dataset(backend, small_inputs, FAST, tmp_path / "run.log")
        assert out.status.tolist() == ["ok"] * 4
        np.testing.assert_allclose(out.logits, expected, atol=1e-4)
        assert out.latency_ms.shape == (4, 2) and np.all(out.latency_ms > 0)
        assert out.meta["versions"]["apache-tvm"] and out.meta["device_info"]["backend"] == backend["kind"]


def test_segfault_is_a_result_and_the_other_images_still_run(big_inputs, tmp_path):
    lib = _library("segv_on_big", tmp_path / "segv.so")
    out = run_dataset({"kind": "tvm", "lib": str(lib)}, big_inputs, FAST, tmp_path / "run.log")
    assert out.status.tolist() == ["ok", "ok", "crash", "ok"]
    assert "signal 11" in out.error[2]
    assert np.isnan(out.logits[2]).all() and np.isfinite(out.logits[[0, 1, 3]]).all()
    assert out.meta["events"] and "Segfault" in out.meta["log_tail"] or "SIGSEGV" in out.error[2]


def test_hang_is_a_timeout(big_inputs, tmp_path):
    lib = _library("hang_on_big", tmp_path / "hang.so")
    settings = RunSettings(warmup=0, repeats=1, image_timeout_s=3, max_restarts=2, reruns=1)
    out = run_dataset({"kind": "tvm", "lib": str(lib)}, big_inputs, settings, tmp_path / "run.log")
    assert out.status.tolist() == ["ok", "ok", "timeout", "ok"]
    assert "3 s" in out.error[2]


def test_nan_output_is_flagged_and_kept(big_inputs, tmp_path):
    lib = _library("nan", tmp_path / "nan.so")
    out = run_dataset({"kind": "tvm", "lib": str(lib)}, big_inputs, FAST, tmp_path / "run.log")
    assert set(out.status) == {"nan"}
    assert np.isnan(out.logits).all() and out.logits.shape == (4, 10)


def test_unreachable_rpc_device_is_retried_then_reported(small_inputs, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = {"kind": "tvm", "lib": "/nonexistent.so", "rpc": {"host": "127.0.0.1", "port": port},
               "connect_timeout_s": 2}
    out = run_dataset(backend, small_inputs, FAST, tmp_path / "run.log")
    assert set(out.status) == {"error"}
    assert f"127.0.0.1:{port} is unreachable" in out.error[0]
    attempts = [e for e in out.meta["events"] if e["event"] == "open_failed"]
    assert len(attempts) == FAST.retries + 1 and attempts[0]["transient"]


def test_a_board_that_hangs_while_opening_is_retried_then_reported(small_inputs, tmp_path):
    """A board that accepts the connection and never answers (the emulated board's session once hung so): each
    attempt times out, and is retried as a board's state, not reported at once as the library's failure."""
    import socket
    from dataclasses import replace

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        backend = {"kind": "tvm", "lib": "/nonexistent.so", "rpc": {"host": "127.0.0.1", "port": port}}
        out = run_dataset(backend, small_inputs, replace(FAST, open_timeout_s=4, retry_backoff_s=0.1),
                          tmp_path / "run.log")
    assert set(out.status) == {"timeout"} and "did not open within 4 s" in out.error[0]
    attempts = [e for e in out.meta["events"] if e["event"] == "open_failed"]
    assert len(attempts) == FAST.retries + 1 and all(a["transient"] for a in attempts)


def test_missing_library_is_not_retried(small_inputs, tmp_path):
    out = run_dataset({"kind": "tvm", "lib": str(tmp_path / "absent.so")}, small_inputs, FAST, tmp_path / "r.log")
    assert set(out.status) == {"error"}
    assert len([e for e in out.meta["events"] if e["event"] == "open_failed"]) == 1


def test_outputs_round_trip(small_onnx, small_inputs, tmp_path):
    out = run_dataset({"kind": "onnxruntime", "onnx": str(small_onnx)}, small_inputs, FAST, tmp_path / "r.log")
    save_outputs(tmp_path / "o.npz", out)
    back = load_outputs(tmp_path / "o.npz")
    np.testing.assert_array_equal(back.logits, out.logits)
    assert back.ids.tolist() == ["img0", "img1", "img2", "img3"]
    assert back.top5.shape == (4, 5) and back.meta["settings"]["repeats"] == 2


def test_a_variant_that_never_built_says_where_it_failed(small_inputs, tmp_path):
    from deltamut.runner.stage import infer_stage

    deploy_info = {"status": "skipped", "reason": "mutate failed", "upstream": {
        "stage": "mutate", "status": "skipped", "upstream": {
            "stage": "compile", "status": "crash", "symptom": "signal",
            "error": "deltamut.compiler.stage:_graph_worker killed by signal 11 (SIGSEGV)"}}}
    (tmp_path / "deploy.json").write_text(json.dumps(deploy_info))
    out = infer_stage(inputs={"lib": tmp_path / "lib.so", "info": tmp_path / "deploy.json", "inputs": small_inputs},
                      outputs={"outputs": tmp_path / "o.npz"}, device="cpu", device_spec={"target": "x86_64"},
                      target_spec={"kind": "llvm"}, runner={}, variant={"model": "m"}, log=tmp_path / "log")
    assert set(out.status) == {"crash"} and out.meta["failed_stage"] == "compile"
    assert out.error[0].startswith("compile failed (signal): ") and "signal 11" in out.error[0]
    assert load_outputs(tmp_path / "o.npz").meta["failed_stage"] == "compile"
