"""The dataset package on real photos: gathering, labels in every accepted format, pixels in the right place."""

from __future__ import annotations

import csv
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deltamut.data import (
    CATALOGUE,
    TFLITE,
    TORCHVISION,
    Preprocessing,
    build_inputs,
    class_names,
    debian,
    default_debian_cache,
    default_ground_truth,
    gather_default_images,
    load_dataset,
    preprocess,
    read_labels,
)
from deltamut.data.labels import val_name_to_class

PYPI_PREFIXES = ("skimage_", "sklearn_", "matplotlib_")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("photos")
    gather_default_images(dest)
    return dest


def _some_photos(photos: Path, target: Path, names: list[str]) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(photos / n, target / n)) for n in names]


# --- gathering -----------------------------------------------------------------------------------------

def test_gather_yields_real_rgb_photos_from_python_packages(photos):
    gathered = gather_default_images(photos)
    assert len(gathered) >= 10
    assert gathered == sorted(gathered)
    assert all(p.parent == photos and p.name.startswith(PYPI_PREFIXES) for p in gathered)
    assert {"skimage_coffee.png", "skimage_chelsea.png", "matplotlib_grace_hopper.jpg"} <= {
        p.name for p in gathered}
    for p in gathered:
        with Image.open(p) as im:
            assert im.format in ("JPEG", "PNG") and im.mode == "RGB", p
            assert min(im.size) >= 200, p


def test_gather_is_idempotent_and_quick(photos):
    before = {p: p.stat().st_mtime_ns for p in photos.iterdir()}
    start = time.perf_counter()
    again = gather_default_images(photos)
    assert time.perf_counter() - start < 2.0
    assert {p: p.stat().st_mtime_ns for p in again} == {p: before[p] for p in again}
    assert not list(photos.glob("*.tmp"))


def test_gather_converts_greyscale_to_rgb_png(photos):
    with Image.open(photos / "skimage_camera.png") as im:  # camera.png ships as 8-bit greyscale
        assert im.mode == "RGB"
        rgb = np.asarray(im)
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_gather_without_apt_keeps_python_photos(tmp_path, monkeypatch, caplog):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    with caplog.at_level(logging.WARNING):
        gathered = gather_default_images(tmp_path / "out", debian_cache=tmp_path / "cache")
    assert len(gathered) >= 10
    assert all(p.name.startswith(PYPI_PREFIXES) for p in gathered)
    assert "apt-get" in caplog.text


def test_gather_uses_already_unpacked_debian_photos(tmp_path):
    cache = default_debian_cache()
    unpacked = [pkg for pkg in ("opencv-doc", "mate-backgrounds") if debian.is_extracted(cache, pkg)]
    names = {p.name for p in gather_default_images(tmp_path, cache if unpacked else None)}
    assert ("opencv_baboon.jpg" in names) == ("opencv-doc" in unpacked)
    assert ("mate_ladybird.jpg" in names) == ("mate-backgrounds" in unpacked)


# --- ground truth --------------------------------------------------------------------------------------

def test_packaged_ground_truth_names_catalogued_photos_and_real_classes():
    rows = list(csv.DictReader(default_ground_truth().open()))
    assert len(rows) >= 8
    catalogued = {p.name for p in CATALOGUE}
    names = class_names()
    assert len(names) == 1000
    for row in rows:
        assert Path(row["file"]).stem in catalogued
        assert names[int(row["class_id"])] == row["class_name"]
    by_file = {r["file"]: int(r["class_id"]) for r in rows}
    assert names[by_file["skimage_coffee.png"]] == "espresso"


# --- loading -------------------------------------------------------------------------------------------

def test_load_with_csv_labels(photos):
    ds = load_dataset(photos, default_ground_truth())
    assert ds.ids == sorted(ds.ids) and len(set(ds.ids)) == len(ds.ids)
    assert len(ds.ids) == len(ds.paths) == len(ds.labels) >= 10
    assert ds.labels.dtype == np.int64
    labels = dict(zip(ds.ids, ds.labels.tolist(), strict=True))
    names = class_names()
    assert names[labels["skimage_coffee.png"]] == "espresso"
    assert names[labels["skimage_chelsea.png"]] == "tabby cat"
    assert labels["skimage_rocket.jpg"] == -1
    assert ds.skipped == []


def test_csv_may_name_files_by_stem_and_ignores_absent_ones(photos, tmp_path):
    folder = tmp_path / "imgs"
    _some_photos(photos, folder / "sub", ["skimage_coffee.png", "skimage_rocket.jpg"])
    labels = tmp_path / "labels.csv"
    labels.write_text("file,class_id\nskimage_coffee,967\nnot_here.jpg,1\n")
    ds = load_dataset(folder, labels)
    assert ds.ids == ["sub/skimage_coffee.png", "sub/skimage_rocket.jpg"]
    assert ds.labels.tolist() == [967, -1]


def test_load_with_one_integer_per_sorted_file(photos, tmp_path):
    folder = tmp_path / "imgs"
    _some_photos(photos, folder, ["skimage_rocket.jpg", "skimage_coffee.png", "sklearn_china.jpg"])
    txt = tmp_path / "val.txt"
    txt.write_text("967\n657\n698\n")  # sorted: coffee, rocket, china
    ds = load_dataset(folder, txt)
    assert ds.ids == ["skimage_coffee.png", "skimage_rocket.jpg", "sklearn_china.jpg"]
    assert ds.labels.tolist() == [967, 657, 698]
    txt.write_text("967\n657\n")
    with pytest.raises(ValueError, match="2 integers for 3 image files"):
        load_dataset(folder, txt)


def test_imagenet_val_folder_labels_by_official_numbering(photos, tmp_path):
    official = val_name_to_class()
    folder = tmp_path / "val"
    folder.mkdir()
    for n, src in ((2, "skimage_coffee.png"), (5, "skimage_rocket.jpg")):
        Image.open(photos / src).convert("RGB").save(folder / f"ILSVRC2012_val_{n:08d}.JPEG")
    lines = [official[f"ILSVRC2012_val_{n:08d}.JPEG"] for n in range(1, 11)]

    implicit = load_dataset(folder)
    assert implicit.labels.tolist() == [lines[1], lines[4]]

    txt = tmp_path / "ground_truth.txt"
    txt.write_text("\n".join(map(str, lines)) + "\n")
    assert load_dataset(folder, txt).labels.tolist() == [lines[1], lines[4]]

    devkit_like = [(v + 1) % 1000 for v in lines]  # another numbering: must not pass silently
    txt.write_text("\n".join(map(str, devkit_like)) + "\n")
    with pytest.raises(ValueError, match="devkit"):
        read_labels(txt, [f"ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, 11)])


def test_caffe_style_file_and_class_lines(photos, tmp_path):
    folder = tmp_path / "imgs"
    _some_photos(photos, folder, ["skimage_coffee.png", "skimage_chelsea.png"])
    txt = tmp_path / "val.txt"
    txt.write_text("skimage_chelsea.png 281\nskimage_coffee.png 967\n")
    assert load_dataset(folder, txt).labels.tolist() == [281, 967]


def test_wordnet_id_folders_give_labels(photos, tmp_path):
    folder = tmp_path / "train"
    _some_photos(photos, folder / "n07920052", ["skimage_coffee.png"])  # espresso
    _some_photos(photos, folder / "n02123045", ["skimage_chelsea.png"])  # tabby
    _some_photos(photos, folder / "misc", ["skimage_rocket.jpg"])
    ds = load_dataset(folder)
    assert ds.ids == ["misc/skimage_rocket.jpg", "n02123045/skimage_chelsea.png", "n07920052/skimage_coffee.png"]
    names = class_names()
    assert [names[c] if c >= 0 else None for c in ds.labels] == [None, "tabby cat", "espresso"]


def test_limit_keeps_the_first_images(photos):
    full = load_dataset(photos)
    ds = load_dataset(photos, limit=3)
    assert ds.ids == full.ids[:3]
    assert len(ds.paths) == len(ds.labels) == 3


def test_unreadable_files_are_skipped_not_fatal(photos, tmp_path):
    folder = tmp_path / "imgs"
    _some_photos(photos, folder, ["skimage_coffee.png", "sklearn_china.jpg"])
    (folder / "a_fake.jpg").write_text("this is text, not a JPEG\n")
    data = (photos / "sklearn_china.jpg").read_bytes()
    (folder / "b_truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / ".hidden.png").write_text("ignored")
    ds = load_dataset(folder)
    assert ds.ids == ["skimage_coffee.png", "sklearn_china.jpg"]
    assert [s[0] for s in ds.skipped] == ["a_fake.jpg", "b_truncated.jpg"]
    assert all(reason for _, reason in ds.skipped)


def test_empty_or_missing_folder_is_an_error(tmp_path):
    empty = tmp_path / "empty_images"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty_images"):
        load_dataset(empty)
    (empty / "x.jpg").write_text("no image")
    with pytest.raises(ValueError, match="empty_images"):
        load_dataset(empty)
    with pytest.raises(ValueError, match="nowhere"):
        load_dataset(tmp_path / "nowhere")


def test_label_file_in_no_known_format_is_an_error(tmp_path):
    bad = tmp_path / "labels.txt"
    bad.write_text("coffee is espresso\n")
    with pytest.raises(ValueError, match="neither"):
        read_labels(bad, ["a.png"])
    bad.write_text("file,class_id\na.png,1000\n")
    with pytest.raises(ValueError, match="0..999"):
        read_labels(bad, ["a.png"])


# --- preprocessing -------------------------------------------------------------------------------------

def _two_tone(tmp_path: Path, size: tuple[int, int], split: str, name: str = "two_tone.png") -> Path:
    """Red in the top (or left) half, blue in the rest."""
    w, h = size
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[..., 2] = 255
    if split == "top":
        rgb[: h // 2] = (255, 0, 0)
    else:
        rgb[:, : w // 2] = (255, 0, 0)
    path = tmp_path / name
    Image.fromarray(rgb).save(path)
    return path


def test_preprocess_keeps_rows_as_height_on_a_wide_image(tmp_path):
    x = preprocess(_two_tone(tmp_path, (400, 200), "top"), TORCHVISION)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    red, blue = x[0], x[2]
    assert red[:100].min() > 2.0 and red[-100:].max() < -2.0   # top rows red, bottom rows not
    assert blue[:100].max() < -1.5 and blue[-100:].min() > 2.0
    assert np.allclose(red[:100], red[:100, :1])               # columns alike: nothing was transposed


def test_preprocess_crops_the_long_side_of_a_tall_image(tmp_path):
    x = preprocess(_two_tone(tmp_path, (200, 500), "left"), TFLITE.scaled(112))
    assert x.shape == (3, 112, 112)
    red = x[0]
    assert red[:, :50].min() > 0.99 and red[:, -50:].max() < -0.99
    assert np.allclose(red[:, :50], red[:1, :50])


def test_preprocess_honours_exif_orientation(tmp_path):
    path = _two_tone(tmp_path, (300, 200), "top")
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down, shown upright after a 180 degree turn
    Image.open(path).rotate(180).save(rotated, exif=exif, quality=95)
    red = preprocess(rotated, TORCHVISION)[0]
    assert red[:90].mean() > 2.0 and red[-90:].mean() < -2.0


@pytest.mark.parametrize("prep", [TORCHVISION, TFLITE], ids=["torchvision", "tflite"])
def test_normalisation_values(tmp_path, prep):
    colour = (10, 128, 250)
    path = tmp_path / "flat.png"
    Image.new("RGB", (320, 240), colour).save(path)
    x = preprocess(path, prep)
    for c in range(3):
        expected = (colour[c] - prep.mean[c]) / prep.std[c]
        assert np.allclose(x[c], expected, atol=1e-5)
    if prep is TFLITE:
        assert np.isclose(x[2, 0, 0], (250 - 127) / 128)
    else:
        assert np.isclose(x[0, 0, 0], (10 - 0.485 * 255) / (0.229 * 255), atol=1e-4)


def test_build_inputs_stacks_the_dataset_in_order(photos):
    ds = load_dataset(photos, limit=4)
    prep = Preprocessing(resize=128, crop=112, mean=(127.0,) * 3, std=(128.0,) * 3)
    batch = build_inputs(ds, prep)
    assert batch.shape == (4, 3, 112, 112) and batch.dtype == np.float32
    assert np.array_equal(batch[2], preprocess(ds.paths[2], prep))
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    assert not np.allclose(batch[0], batch[1])


# --- a model's own classes ------------------------------------------------------------------------------

def test_ground_truth_by_name_in_the_models_own_classes(tmp_path):
    images = tmp_path / "images"
    for folder, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200)), ("unsorted", (0, 200, 0))):
        (images / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8), colour).save(images / folder / "a.png")
    names = ["cat", "dog"]
    ds = load_dataset(images, names=names)  # the ImageFolder layout: folders named as classes
    assert dict(zip(ds.ids, ds.labels.tolist(), strict=True)) == {"cat/a.png": 0, "dog/a.png": 1,
                                                                  "unsorted/a.png": -1}
    by_name = tmp_path / "labels.csv"
    by_name.write_text("file,class\ncat/a.png,Dog\ndog/a.png,1\nunsorted/a.png,cat\n")
    ds = load_dataset(images, by_name, names=names)
    assert ds.labels.tolist() == [1, 1, 0]  # by name (case-blind) or by index
    lines = tmp_path / "labels.txt"
    lines.write_text("cat/a.png dog\nunsorted/a.png cat\n")
    assert load_dataset(images, lines, names=names).labels.tolist() == [1, -1, 0]
    lines.write_text("cat/a.png fox\n")
    with pytest.raises(ValueError, match=r"line 1: 'fox' is neither a class id nor one of the model's 2 class"):
        load_dataset(images, lines, names=names)
    lines.write_text("file,class_id\ncat/a.png,2\n")
    with pytest.raises(ValueError, match=r"0\.\.1"):
        load_dataset(images, lines, names=names)


def test_imagenet_labels_may_be_given_by_name_too(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,class\nx.png,espresso\ny.png,Golden_Retriever\n")
    assert read_labels(labels, ["x.png", "y.png"]) == {"x.png": 967, "y.png": 207}


@pytest.mark.parametrize(("text", "names"), [
    ("cat\ndog\n", ["cat", "dog"]),
    ('["cat", "dog"]', ["cat", "dog"]),
    ('{"1": "dog", "0": "cat"}', ["cat", "dog"]),
    ('{"cat": 0, "dog": 1}', ["cat", "dog"]),
    ('{"id2label": {"0": "cat", "1": "dog"}, "label2id": {}}', ["cat", "dog"]),
], ids=["text", "json_list", "json_index_to_name", "json_name_to_index", "hf_config"])
def test_class_names_files(tmp_path, text, names):
    from deltamut.models.labels import read_class_names

    path = tmp_path / "names"
    path.write_text(text)
    assert read_class_names(path) == names


def test_a_class_names_file_with_a_gap_is_refused(tmp_path):
    from deltamut.models.labels import read_class_names

    path = tmp_path / "names.json"
    path.write_text('{"0": "cat", "2": "fox"}')
    with pytest.raises(ValueError, match="names.json: no name for class 1"):
        read_class_names(path)
