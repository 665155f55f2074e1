"""Preprocessing as data: every mode, channel order, scale and layout gives the tensor worked out here by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deltamut.data.inputs import preprocess, preprocess_image
from deltamut.data.preprocessing import PADDLE_CLS, PRESETS, TORCHVISION, Preprocessing
from deltamut.data.stage import prepare_inputs
from deltamut.models import ModelError, load_model

COLOUR = (200, 100, 50)


def _flat(tmp_path: Path, size: tuple[int, int], colour=COLOUR, name: str = "flat.png") -> Path:
    path = tmp_path / name
    Image.new("RGB", size, colour).save(path)
    return path


def _halves(tmp_path: Path, size: tuple[int, int]) -> Path:
    """Red left half, blue right half (w x h = size)."""
    w, h = size
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2, 0] = 255
    rgb[:, w // 2:, 2] = 255
    path = tmp_path / "halves.png"
    Image.fromarray(rgb).save(path)
    return path


def test_bgr_and_unit_scale_give_the_hand_computed_values(tmp_path):
    prep = Preprocessing(crop=32, resize=32, channels="BGR", scale=1 / 255, mean=(0.5, 0.4, 0.3),
                         std=(0.25, 0.2, 0.1))
    x = preprocess(_flat(tmp_path, (40, 40)), prep)
    blue, green, red = (v / 255 for v in COLOUR[::-1])
    assert x.shape == (3, 32, 32)
    assert np.allclose(x[0], (blue - 0.5) / 0.25, atol=1e-5)   # channel 0 is blue
    assert np.allclose(x[1], (green - 0.4) / 0.2, atol=1e-5)
    assert np.allclose(x[2], (red - 0.3) / 0.1, atol=1e-5)


def test_unit_scale_with_unit_mean_equals_the_0_255_convention(tmp_path):
    unit = Preprocessing(scale=1 / 255, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    path = _halves(tmp_path, (300, 260))
    assert np.allclose(preprocess(path, unit), preprocess(path, TORCHVISION), atol=1e-5)


def test_exact_resize_ignores_the_aspect_ratio(tmp_path):
    prep = Preprocessing(crop=(20, 60), mode="exact", mean=(0,) * 3, std=(1,) * 3)
    x = preprocess(_halves(tmp_path, (100, 300)), prep)  # a tall photo squashed into a wide tensor
    assert x.shape == (3, 20, 60)
    assert (x[0, :, :29] == 255).all() and (x[0, :, 31:] == 0).all()  # left half red over the full height
    assert (x[2, :, 31:] == 255).all()


@pytest.mark.parametrize(("align", "top"), [("center", 16), ("start", 0)])
def test_pad_keeps_the_aspect_ratio_and_fills_with_the_pad_value(tmp_path, align, top):
    prep = Preprocessing(crop=64, mode="pad", pad_value=114.0, align=align, mean=(0,) * 3, std=(1,) * 3)
    x = preprocess(_flat(tmp_path, (200, 100)), prep)  # 2:1 -> 64 x 32 inside 64 x 64
    assert x.shape == (3, 64, 64)
    image_rows = np.zeros(64, bool)
    image_rows[top:top + 32] = True
    assert np.allclose(x[:, image_rows], np.array(COLOUR, np.float32)[:, None, None])
    assert (x[:, ~image_rows] == 114.0).all()


def test_nhwc_is_the_nchw_tensor_transposed(tmp_path):
    path = _halves(tmp_path, (90, 70))
    nchw = preprocess(path, TORCHVISION.at_size((40, 56)))
    nhwc = preprocess(path, TORCHVISION.at_size((40, 56)).with_({"layout": "NHWC"}))
    assert nchw.shape == (3, 40, 56) and nhwc.shape == (40, 56, 3)
    assert np.array_equal(nhwc, nchw.transpose(1, 2, 0))


def test_grayscale_is_one_channel_of_itu_601_luma(tmp_path):
    prep = Preprocessing(crop=16, resize=16, channels="L", mean=(0,), std=(1,))
    x = preprocess(_flat(tmp_path, (20, 20)), prep)
    luma = (COLOUR[0] * 299 + COLOUR[1] * 587 + COLOUR[2] * 114) / 1000
    assert x.shape == (1, 16, 16) and np.allclose(x, round(luma))


def test_non_square_centre_crop_keeps_height_and_width_apart(tmp_path):
    x = preprocess(_halves(tmp_path, (400, 200)), TORCHVISION.at_size((48, 192)))
    assert x.shape == (3, 48, 192)
    assert x[0, :, :90].min() > 2.0 and x[0, :, -90:].max() < -2.0  # red stays on the left


def test_presets_are_named_and_paddle_cls_is_a_48_by_192_text_line():
    assert set(PRESETS) == {"torchvision", "tflite", "inception", "paddle-cls"}
    assert PRESETS["inception"].crop == (299, 299) and PRESETS["inception"].mean == (127.5,) * 3
    assert PADDLE_CLS.tensor_shape(2) == (2, 3, 48, 192) and PADDLE_CLS.mode == "pad"


def test_a_mapping_overrides_a_preset_and_bad_fields_are_named():
    prep = Preprocessing.from_dict({"preset": "tflite", "channels": "BGR", "crop": 112})
    assert (prep.channels, prep.crop, prep.resize, prep.mean) == ("BGR", (112, 112), 128, (127.0,) * 3)
    with pytest.raises(ValueError, match="unknown preprocessing key.*chanels"):
        Preprocessing.from_dict({"preset": "tflite", "chanels": "BGR"})
    with pytest.raises(ValueError, match="unknown preprocessing preset 'keras'"):
        Preprocessing.from_dict({"preset": "keras"})
    with pytest.raises(ValueError, match=r"mean needs 1 value\(s\) for channels L"):
        Preprocessing.from_dict({"preset": "torchvision", "channels": "L"})
    with pytest.raises(ValueError, match="mode must be one of crop, exact, pad"):
        Preprocessing.from_dict({"preset": "torchvision", "mode": "letterbox"})


def test_a_config_error_in_preprocessing_names_the_model():
    with pytest.raises(ModelError, match="model 'r18': preprocessing: unknown preprocessing key"):
        load_model("r18", {"arch": "resnet18", "preprocessing": {"sclae": 1}})
    with pytest.raises(ModelError, match="zoo architectures take square 3-channel NCHW"):
        load_model("r18", {"arch": "resnet18", "preprocessing": {"layout": "NHWC"}})


def test_input_level_mutants_transform_the_photo_before_any_preprocessing(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _halves(images, (120, 80))
    prep = Preprocessing(crop=(24, 40), mode="exact", channels="BGR", layout="NHWC", mean=(0,) * 3, std=(1,) * 3)
    out = {k: tmp_path / f"{k}.{ext}" for k, ext in (("x", "npz"), ("m", "json"))}

    def mirror(im: Image.Image, _seed: int) -> Image.Image:
        return im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    prepare_inputs(images, None, None, prep, out["x"], out["m"], transform=mirror)
    with np.load(out["x"]) as z:
        x = z["x"][0]
    expected = preprocess_image(mirror(Image.open(images / "halves.png").convert("RGB"), 0), prep)
    assert x.shape == (24, 40, 3) and np.array_equal(x, expected)
    assert (x[:, :19, 0] == 255).all(), "after the mirror, blue (BGR channel 0) is on the left"


def test_the_config_schema_offers_exactly_the_presets_and_fields():
    from deltamut.defaults import schema

    definition = schema()["definitions"]["preprocessing"]["oneOf"]
    assert definition[0]["enum"] == list(PRESETS)
    assert definition[1]["properties"]["preset"]["enum"] == list(PRESETS)
    assert set(definition[1]["properties"]) == {"preset", *Preprocessing().to_dict()}
