"""The report's figures on small hand-made tables, including the cases a real study produces: no mutants,
no labels, variants that crashed, NaN logits and the zero-width logits of a mutant that was not run."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deltamut.plots import PLOTS
from deltamut.report import (
    changed_images,
    disagreement_heatmap,
    disagreement_matrix,
    gallery_plot,
    kill_matrix_plot,
    latency_frame,
    latency_plot,
    plots_stage,
)
from deltamut.report.common import CONTENT_KEY, STATUS_COLOURS
from deltamut.report.gallery import probabilities, top5
from deltamut.report.heatmap import FRAMEWORK_COLUMN
from deltamut.report.sites import sites_plot
from deltamut.runner.outputs import Outputs, save_outputs

IMAGES = ["a.jpg", "b.jpg", "c.jpg"]
ORIG = "tvm/basic/original/cpu"


def _png(path: Path, min_size: tuple[int, int] = (200, 60)) -> Image.Image:
    """A real PNG of sensible size (not a 1x1 stub, not a runaway 20k-pixel figure)."""
    with Image.open(path) as im:
        im.verify()
    im = Image.open(path)
    assert im.format == "PNG"
    assert min_size[0] <= im.width <= 6000 and min_size[1] <= im.height <= 9000, im.size
    return im


def _has_colour(im: Image.Image, hex_colour: str, min_pixels: int = 50) -> bool:
    rgb = np.asarray(im.convert("RGB")).reshape(-1, 3).astype(int)
    want = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - want).sum(axis=1) <= 6).sum()) >= min_pixels


def _pair(kind, a, b, pct, verdict="top1_flip", n=3, **coords):
    return {"model": "m", "kind": kind, "a": a, "b": b, "top1_disagreement_pct": pct, "verdict": verdict,
            "n_compared": n, "opt_a": coords.get("opt", ""), "mutant_a": coords.get("mutant", ""),
            "device_a": coords.get("device", "")}


@pytest.fixture
def per_pair() -> pd.DataFrame:
    return pd.DataFrame([
        _pair("framework", "onnxruntime", "torch", 0.0, "numeric_drift"),
        _pair("compiler", "tvm/basic/original/cpu", "torch", 100 / 3, opt="basic", mutant="original", device="cpu"),
        _pair("compiler", "tvm/basic/original/rpi", "torch", np.nan, "crash", n=0, opt="basic",
              mutant="original", device="rpi"),
        _pair("compiler", "tvm/fast/original/cpu", "torch", 100.0, opt="fast", mutant="original", device="cpu"),
        _pair("mutant", "tvm/basic/mnn1/cpu", ORIG, 100.0, opt="basic", mutant="mnn1", device="cpu"),
    ])


def _image_rows(kind, a, b, top1_a, top1_b, status_a="ok", status_b="ok", lat_a=(5.0, 6.0, 7.0),
                lat_b=(1.0, 1.5, 2.0), labels=(-1, -1, -1)):
    return [{"model": "m", "kind": kind, "a": a, "b": b, "image": img, "label": labels[i],
             "status_a": status_a, "status_b": status_b, "top1_a": top1_a[i], "top1_b": top1_b[i],
             "top1_agree": top1_a[i] == top1_b[i], "latency_a_ms": lat_a[i], "latency_b_ms": lat_b[i]}
            for i, img in enumerate(IMAGES)]


@pytest.fixture
def per_image() -> pd.DataFrame:
    rows = (_image_rows("framework", "onnxruntime", "torch", [1, 2, 3], [1, 2, 3], lat_a=(0.5, 0.6, 0.7))
            + _image_rows("compiler", ORIG, "torch", [1, 9, 3], [1, 2, 3], lat_a=(50.0, 60.0, 55.0))
            + _image_rows("mutant", "tvm/basic/mnn1/cpu", ORIG, [4, 4, 4], [1, 9, 3])
            + _image_rows("mutant", "tvm/basic/mnn2/cpu", ORIG, [-1, -1, -1], [1, 9, 3], status_a="crash",
                          lat_a=(np.nan,) * 3, lat_b=(50.0, 60.0, 55.0)))
    return pd.DataFrame(rows)


def _outputs(top1: list[int], status: str = "ok", width: int = 10, nan: bool = False) -> Outputs:
    n = len(IMAGES)
    logits = np.zeros((n, width), np.float32)
    for i, c in enumerate(top1):
        if width:
            logits[i] = np.linspace(0, 1, width, dtype=np.float32)[::-1]  # a full ranking, class 0 first
            logits[i, c] = 3.0
    if nan:
        logits[:] = np.nan
    return Outputs(ids=np.array(IMAGES), logits=logits, latency_ms=np.ones((n, 2)), status=np.array([status] * n),
                   error=np.array([""] * n))


@pytest.fixture
def photos(tmp_path) -> dict:
    paths = []
    for i, name in enumerate(IMAGES[:2]):  # the third photo is missing on purpose
        path = tmp_path / name
        Image.fromarray(np.full((40, 60, 3), 60 * i + 30, np.uint8)).save(path, format="PNG")
        paths.append(str(path))
    return {"ids": IMAGES, "paths": [*paths, str(tmp_path / "gone.jpg")]}


# --- heatmap ------------------------------------------------------------------------------------------------
def test_disagreement_matrix_places_frameworks_and_devices(per_pair):
    values, notes = disagreement_matrix(per_pair)
    assert list(values.columns) == [FRAMEWORK_COLUMN, "cpu", "rpi"]
    assert list(values.index) == ["onnxruntime", "tvm basic", "tvm fast"]  # mutants are not against the reference
    assert values.loc["onnxruntime", FRAMEWORK_COLUMN] == 0.0
    assert values.loc["tvm basic", "cpu"] == pytest.approx(100 / 3)
    assert notes.loc["tvm basic", "cpu"] == "33%\n1/3"
    assert np.isnan(values.loc["tvm basic", "rpi"]) and notes.loc["tvm basic", "rpi"] == "crash"
    assert np.isnan(values.loc["onnxruntime", "cpu"]) and notes.loc["onnxruntime", "cpu"] == ""


def test_heatmap_png_colours_the_disagreement(per_pair, tmp_path):
    im = _png(disagreement_heatmap(per_pair, tmp_path / "h.png", model="m"), (300, 150))
    calm = per_pair.assign(top1_disagreement_pct=0.0, verdict="identical")
    calm_im = _png(disagreement_heatmap(calm, tmp_path / "calm.png"))
    dark_red = "#67000D"  # the top of matplotlib's Reds, drawn only for the 100% cell
    assert _has_colour(im, dark_red) and not _has_colour(calm_im, dark_red)


def test_heatmap_without_pairs_is_a_note(tmp_path):
    empty = pd.DataFrame(columns=["model", "kind", "a", "b", "top1_disagreement_pct", "verdict"])
    im = _png(disagreement_heatmap(empty, tmp_path / "h.png"))
    assert im.height < 300


# --- kill matrix --------------------------------------------------------------------------------------------
def _kill(statuses: dict[str, str], opts=("basic",)) -> pd.DataFrame:
    return pd.DataFrame([{"model": "m", "opt": opt, "device": "cpu", "mutant": m, "operator": "op",
                          "category": "cat", "level": "kernel", "status": s,
                          "top1_changed_pct": 50.0 if s in ("killed", "survived") else np.nan}
                         for opt in opts for m, s in statuses.items()])


def _content(path) -> str:
    """What a figure file says it holds (report.common.CONTENT_KEY): "plot" or "note: ..."."""
    with Image.open(path) as im:
        return im.info[CONTENT_KEY]


def test_sites_plot_draws_each_sweep_against_depth(tmp_path):
    kill = pd.DataFrame([{"model": "m", "opt": "o", "device": "cpu", "mutant": f"sw.site{k}", "operator": "op",
                          "sweep": "sw", "site": k, "depth": k / 4, "status": s, "duplicate_of": None,
                          "top1_changed_pct": p}
                         for k, (s, p) in enumerate([("killed", 90.0), ("killed", 40.0), ("survived", 0.0),
                                                     ("survived", 0.0), ("equivalent", np.nan)])])
    im = _png(sites_plot(kill, tmp_path / "s.png", "m"), (300, 150))
    assert _has_colour(im, STATUS_COLOURS["killed"]) and _has_colour(im, STATUS_COLOURS["survived"])
    assert _content(tmp_path / "s.png") == "plot"
    plain = kill.assign(sweep=None)
    assert _content(sites_plot(plain, tmp_path / "n.png")).startswith("note: This study has no sweep")


def test_kill_matrix_colours_follow_status(tmp_path):
    im = _png(kill_matrix_plot(_kill({"m1": "killed", "m2": "equivalent", "m3": "crashed"}, ("basic", "fast")),
                               tmp_path / "k.png", model="m"), (300, 150))
    assert _has_colour(im, STATUS_COLOURS["killed"]) and _has_colour(im, STATUS_COLOURS["equivalent"])
    assert not _has_colour(im, STATUS_COLOURS["survived"])
    survivors = _png(kill_matrix_plot(_kill({"m1": "survived"}), tmp_path / "s.png"))
    assert _has_colour(survivors, STATUS_COLOURS["survived"]) and not _has_colour(survivors, STATUS_COLOURS["killed"])


def test_kill_matrix_with_partial_grid_and_unknown_status(tmp_path):
    kill = pd.concat([_kill({"m1": "killed", "m2": "survived"}), _kill({"m1": "weird"}, ("fast",))])
    _png(kill_matrix_plot(kill, tmp_path / "k.png"), (300, 100))


def test_kill_matrix_without_mutants_is_a_note(tmp_path):
    im = _png(kill_matrix_plot(pd.DataFrame(columns=["opt", "device", "mutant", "status"]), tmp_path / "k.png"))
    assert not _has_colour(im, STATUS_COLOURS["killed"]) and im.height < 300


# --- latency ------------------------------------------------------------------------------------------------
def test_latency_frame_has_one_row_per_variant_and_image(per_image):
    frame = latency_frame(per_image)
    assert sorted(frame["variant"].unique()) == sorted(["onnxruntime", "torch", ORIG, "tvm/basic/mnn1/cpu",
                                                        "tvm/basic/mnn2/cpu"])
    assert not frame.duplicated(["variant", "image"]).any()
    orig = frame[frame["variant"] == ORIG].set_index("image")
    assert orig.loc["b.jpg", "latency_ms"] == 60.0 and orig.loc["b.jpg", "opt"] == "basic"
    crashed = frame[frame["variant"] == "tvm/basic/mnn2/cpu"]
    assert crashed["latency_ms"].isna().all() and set(crashed["status"]) == {"crash"}


def test_latency_frame_drops_nonpositive_and_infinite_timings():
    rows = pd.DataFrame(_image_rows("framework", "onnxruntime", "torch", [1, 2, 3], [1, 2, 3],
                                    lat_a=(0.0, np.inf, 2.0), lat_b=(-1.0, 1.0, 1.0)))
    frame = latency_frame(rows).set_index(["variant", "image"])["latency_ms"]
    assert np.isnan(frame["onnxruntime", "a.jpg"]) and np.isnan(frame["onnxruntime", "b.jpg"])
    assert np.isnan(frame["torch", "a.jpg"]) and frame["torch", "b.jpg"] == 1.0


def test_latency_plot_keeps_a_row_for_failed_variants(per_image, tmp_path):
    frame = latency_frame(per_image)
    im = _png(latency_plot(frame, tmp_path / "l.png", model="m", reference="torch"), (400, 200))
    no_crash = _png(latency_plot(frame[frame["variant"] != "tvm/basic/mnn2/cpu"], tmp_path / "l2.png"))
    assert im.height > no_crash.height  # the crashed variant has its own (annotated) row


def test_latency_plot_edge_cases(tmp_path):
    assert _png(latency_plot(latency_frame(pd.DataFrame()), tmp_path / "empty.png")).height < 300
    untimed = pd.DataFrame(_image_rows("framework", "onnxruntime", "torch", [1, 2, 3], [1, 2, 3],
                                       status_a="crash", status_b="crash", lat_a=(np.nan,) * 3,
                                       lat_b=(np.nan,) * 3))
    assert _png(latency_plot(latency_frame(untimed), tmp_path / "untimed.png")).height < 300


# --- gallery ------------------------------------------------------------------------------------------------
def test_changed_images_only_where_both_sides_ran(per_image):
    changed = changed_images(per_image)
    assert set(map(tuple, changed[["image", "a"]].to_numpy())) == {
        ("b.jpg", ORIG), ("a.jpg", "tvm/basic/mnn1/cpu"), ("b.jpg", "tvm/basic/mnn1/cpu"),
        ("c.jpg", "tvm/basic/mnn1/cpu")}
    assert changed["image"].iloc[0] == "b.jpg"  # flipped in two comparisons: shown first
    assert list(changed.loc[changed["image"] == "b.jpg", "kind"]) == ["compiler", "mutant"]


def test_probabilities_softmax_and_passthrough():
    p = probabilities(np.array([1.0, 3.0, 2.0, 1000.0]))
    assert p.sum() == pytest.approx(1.0) and p.argmax() == 3 and np.isfinite(p).all()
    already = np.array([0.1, 0.7, 0.2])
    assert np.allclose(probabilities(already), already)
    assert probabilities(np.array([2.0, 0.0]))[0] == pytest.approx(np.exp(2) / (np.exp(2) + 1))


def test_top5_of_usable_failed_nan_and_zero_width_outputs():
    status, best = top5(_outputs([7, 1, 2]), "a.jpg")
    assert status == "ok" and [c for c, _ in best] == [7, 0, 1, 2, 3]
    assert best[0][1] > best[1][1] > best[4][1] > 0
    assert top5(_outputs([0, 0, 0], status="equivalent", width=0), "a.jpg") == ("equivalent", [])
    assert top5(_outputs([0, 0, 0], nan=True), "b.jpg") == ("nan", [])
    assert top5(_outputs([0, 0, 0], status="crash"), "c.jpg") == ("crash", [])
    assert top5(_outputs([0, 0, 0]), "zzz.jpg") == ("missing", [])
    assert top5(None, "a.jpg") == ("missing", [])


def test_gallery_draws_changed_images_with_failed_and_missing_parts(per_image, photos, tmp_path):
    outputs = {"torch": _outputs([1, 2, 3]), ORIG: _outputs([1, 9, 3]), "tvm/basic/mnn1/cpu": None,
               "tvm/basic/mnn2/cpu": _outputs([0, 0, 0], status="crash")}
    names = [f"name {i}" for i in range(5)]  # fewer names than classes: the rest print as ids
    full = _png(gallery_plot(per_image, outputs, photos, tmp_path / "g.png", "m", "torch", names), (500, 300))
    one = _png(gallery_plot(per_image, outputs, photos, tmp_path / "g1.png", "m", "torch", names, max_images=1))
    assert full.height > one.height
    assert full.mode == "P"  # palette-encoded to keep the report small
    assert (tmp_path / "g.png").stat().st_size < 400_000


def test_gallery_with_labels_and_no_changes(per_image, photos, tmp_path):
    labelled = per_image.assign(label=3)
    _png(gallery_plot(labelled, {"torch": _outputs([3, 3, 3])}, photos, tmp_path / "l.png", reference="torch"))
    same = per_image.assign(top1_a=per_image["top1_b"])
    assert _png(gallery_plot(same, {}, photos, tmp_path / "s.png")).height < 300
    assert _png(gallery_plot(pd.DataFrame(), {}, {}, tmp_path / "e.png")).height < 300


# --- the stage ------------------------------------------------------------------------------------------------
def _write_tables(tmp_path, per_image, per_pair, kill=None) -> dict:
    tables = {"per_image": tmp_path / "per_image.parquet", "per_pair": tmp_path / "per_pair.parquet",
              "kill_matrix": tmp_path / "kill_matrix.parquet"}
    per_image.to_parquet(tables["per_image"])
    per_pair.to_parquet(tables["per_pair"])
    if kill is not None:
        kill.to_parquet(tables["kill_matrix"])
    return tables


def test_plots_stage_writes_all_four_figures(per_image, per_pair, photos, tmp_path):
    variants = {v: {"path": str(tmp_path / f"{v.replace('/', '_')}.npz")} for v in
                ("torch", ORIG, "tvm/basic/mnn1/cpu", "tvm/basic/mnn2/cpu")}
    save_outputs(variants["torch"]["path"], _outputs([1, 2, 3]))
    save_outputs(variants[ORIG]["path"], _outputs([1, 9, 3]))
    save_outputs(variants["tvm/basic/mnn1/cpu"]["path"], _outputs([4, 4, 4]))
    save_outputs(variants["tvm/basic/mnn2/cpu"]["path"], _outputs([0, 0, 0], status="crash", width=0))
    dataset = tmp_path / "dataset.json"
    dataset.write_text(pd.Series(photos).to_json())
    plots = {name: tmp_path / "out" / f"{name}.png" for name in PLOTS}
    tables = _write_tables(tmp_path, per_image, per_pair, _kill({"mnn1": "killed"}))
    written = plots_stage(inputs={**tables, "dataset": dataset}, outputs=plots, model="m", variants=variants,
                          reference="torch")
    assert written == plots
    assert _png(plots["gallery"], (500, 300)).height > 300  # real gallery, not a note
    assert _content(plots["kill_matrix"]) == "plot" and _content(plots["gallery"]) == "plot"
    assert _content(plots["sites"]).startswith("note: This study has no sweep")


def test_plots_stage_survives_a_malformed_table(per_image, tmp_path, caplog):
    plots = {"heatmap": tmp_path / "h.png", "kill_matrix": tmp_path / "k.png"}
    broken = pd.DataFrame({"model": ["m"], "a": ["x"]})  # no kind, no verdict: the heatmap cannot be drawn
    with caplog.at_level(logging.ERROR):
        plots_stage(inputs={**_write_tables(tmp_path, per_image, broken), "dataset": tmp_path / "none.json"},
                    outputs=plots, model="m", variants={}, reference="torch")
    assert "heatmap plot failed" in caplog.text
    _png(plots["heatmap"])
    assert _content(plots["heatmap"]).startswith("note: This plot could not be drawn: ")  # and says so in the file
    _png(plots["kill_matrix"])  # no kill matrix file: a study without mutants


def test_plots_stage_rejects_unknown_plot(tmp_path):
    with pytest.raises(ValueError, match="unknown plot"):
        plots_stage(inputs={"dataset": tmp_path / "d.json"}, outputs={"pie": tmp_path / "p.png"}, model="m",
                    variants={}, reference="torch")
