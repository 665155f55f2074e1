"""Throughput at batch B on the tiny model and real photos: real exports, real ONNX Runtime, a real TVM build."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from deltamut.runner.throughput import (
    ThroughputSettings,
    measure_throughput,
    padded_batches,
    parse_variant,
    throughput_stage,
    throughput_table_stage,
    variant_name,
)

TINY = {"source": "zoo", "arch": "mobilenet_v2", "input_size": 64, "seed": 0}
N_PHOTOS = 5
BATCH = 2  # 5 images in batches of 2: the last batch holds one padding image
SETTINGS = ThroughputSettings(batch_size=BATCH, warmup=1, passes=3, threads=2, timeout_s=600)


def _export(tmp_path, batch: int, exporter: str = "legacy"):
    """The tiny model as the export rule writes it for a batch size (the legacy exporter takes seconds where
    dynamo takes 20 s; the workflow's dynamo export goes through the same function)."""
    from deltamut.export import export_model
    from deltamut.models import load_model

    out = tmp_path / f"model_b{batch}.onnx"
    export_model(load_model("tiny", TINY), out, exporter=exporter, batch=batch)
    return out


@pytest.fixture(scope="module")
def photo_inputs(tmp_path_factory):
    """Five real photos preprocessed for the tiny model, as the data stage writes them."""
    from deltamut.data import gather_default_images
    from deltamut.data.stage import prepare_inputs
    from deltamut.models import load_model

    folder = tmp_path_factory.mktemp("photos")
    for p in gather_default_images(tmp_path_factory.mktemp("all"))[:N_PHOTOS]:
        (folder / p.name).write_bytes(p.read_bytes())
    out = tmp_path_factory.mktemp("data")
    prep = load_model("tiny", TINY).preprocessing
    count = prepare_inputs(folder, None, None, prep, out / "inputs.npz", out / "manifest.json")
    assert count == N_PHOTOS
    return out / "inputs.npz"


def test_padded_batches_cover_every_image_once_before_padding():
    batches = padded_batches(5, 2)
    assert [len(b) for b in batches] == [2, 2, 2]
    flat = np.concatenate(batches)
    assert flat[:5].tolist() == [0, 1, 2, 3, 4]
    assert flat[5] in range(5)  # the padding repeats a real image
    assert [len(b) for b in padded_batches(3, 3)] == [3]
    with pytest.raises(ValueError):
        padded_batches(0, 2)


def test_variant_names_round_trip():
    for fw, opt in [("torch", None), ("onnxruntime", None), ("tvm", "basic"), ("tvm", "tvm-x.1")]:
        assert parse_variant(variant_name(fw, opt)) == (fw, opt)
    with pytest.raises(ValueError):
        parse_variant("tvm-")
    with pytest.raises(ValueError):
        variant_name("tvm")


def _check_ok(rec: dict, framework: str) -> None:
    assert rec["status"] == "ok", rec.get("error")
    assert rec["framework"] == framework
    assert rec["batch_size"] == BATCH and rec["measure"] == f"throughput at batch {BATCH}"
    assert rec["images"] == N_PHOTOS and rec["padding"] == 1
    assert rec["calls"] == {"1": N_PHOTOS, str(BATCH): 3}
    assert rec["images_per_s"] > 0 and rec["images_per_s_batch1"] > 0
    assert rec["images_per_s_min"] <= rec["images_per_s"] <= rec["images_per_s_max"]
    assert len(rec["images_per_s_per_pass"]) == SETTINGS.passes
    assert rec["speedup"] == pytest.approx(rec["images_per_s"] / rec["images_per_s_batch1"])
    # Finite means the batch-B rows lined up with the batch-1 rows: padding left in would be a shape mismatch (inf).
    assert rec["max_abs_diff_vs_batch1"] < 1e-4
    assert rec["versions"]["onnxruntime"] != ""


def test_torch_throughput(photo_inputs, tmp_path):
    _check_ok(measure_throughput("tiny", TINY, "torch", photo_inputs, SETTINGS, tmp_path / "log.txt"), "torch")


def test_onnxruntime_throughput(photo_inputs, tmp_path):
    artifacts = {"onnx": _export(tmp_path, 1), "onnx_batched": _export(tmp_path, BATCH)}
    rec = measure_throughput("tiny", TINY, "onnxruntime", photo_inputs, SETTINGS, tmp_path / "log.txt",
                             artifacts=artifacts)
    _check_ok(rec, "onnxruntime")


def _library(onnx, opt_spec, out):
    """A library built the way the compile, mutate and deploy rules build it."""
    from deltamut.compiler.build import build_library
    from deltamut.compiler.importer import import_onnx
    from deltamut.compiler.optconfig import OptConfig
    from deltamut.compiler.passes import lower, optimise_graph

    opt = OptConfig.from_dict("basic", opt_spec)
    build_library(lower(optimise_graph(import_onnx(onnx), opt), opt), {"kind": "llvm"}, opt, out)
    return out


@pytest.mark.slow
def test_tvm_throughput_and_table(photo_inputs, tmp_path):
    """Builds the tiny model twice (batch 1 and 2) under an optimisation: over 20 s on two cores."""
    from deltamut.failure import write_failure

    basic = {"fuse": False, "llvm": {"opt-level": 1}}
    inputs = {"inputs": photo_inputs, "lib": _library(_export(tmp_path, 1), basic, tmp_path / "b1.so"),
              "lib_batched": _library(_export(tmp_path, BATCH), basic, tmp_path / "b2.so")}
    out = tmp_path / "throughput" / "tvm-basic.json"
    one_thread = replace(SETTINGS, threads=1)  # not conftest's TVM_NUM_THREADS default, so the check below bites
    rec = throughput_stage(inputs=inputs, outputs={"record": out}, model="tiny", model_spec=TINY, variant="tvm-basic",
                           settings=one_thread, log=tmp_path / "log.txt", target={"kind": "llvm"})
    _check_ok(rec, "tvm")
    assert rec["opt"] == "basic" and rec["target"] == {"kind": "llvm"}
    assert rec["tvm_num_threads"] == "1" and rec["threads"] == 1  # the timing child saw the job's thread count
    assert json.loads(out.read_text())["images_per_s"] == rec["images_per_s"]

    # a batch-B library the deploy rule could not build: recorded with the stage that failed, not timed
    write_failure(tmp_path / "broken.so", "deploy", {"status": "error", "error": "ValueError: no such pass"})
    failed = tmp_path / "throughput" / "tvm-broken.json"
    bad = throughput_stage(inputs={**inputs, "lib_batched": tmp_path / "broken.so"}, outputs={"record": failed},
                           model="tiny", model_spec=TINY, variant="tvm-broken", settings=SETTINGS,
                           log=tmp_path / "log.txt")
    assert bad["status"] == "error" and "no such pass" in bad["error"] and bad["failed_stage"] == "deploy"

    csv, md = tmp_path / "throughput.csv", tmp_path / "throughput.md"
    throughput_table_stage(inputs={"records": [out, failed]}, outputs={"csv": csv, "md": md}, model="tiny")
    import pandas as pd

    table = pd.read_csv(csv)
    assert table["variant"].tolist() == ["tvm-basic", "tvm-broken"]
    assert set(table["measure"]) == {f"throughput at batch {BATCH}"}
    assert table["status"].tolist() == ["ok", "error"]
    text = md.read_text()
    assert "per image at batch 1" in text and f"throughput at batch {BATCH}" in text
