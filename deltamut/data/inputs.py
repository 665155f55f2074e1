"""Photos -> model input tensors, the one place where pixels are resized, cropped and normalised.

Every framework, compiler and device in a study gets the very same array from here, so a
difference found later is the model's, never the input pipeline's. The default geometry follows the
torchvision PIL pipeline (Resize(short side) -> CenterCrop), the usual reference for ImageNet models; the
other modes, channel orders, scales and layouts are `Preprocessing`'s fields. Resizing is PIL's bilinear
filter everywhere: a model trained with OpenCV's differs in the last bits, as it would in any deployment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from deltamut.data.dataset import Dataset
from deltamut.data.preprocessing import Preprocessing


def load_rgb(path: Path) -> Image.Image:
    """Decode as 8-bit RGB, upright as a viewer shows it (EXIF orientation applied).

    Honouring the orientation tag matters because the ground truth was checked by looking at the
    photo; a sideways cat is a different input from the one that was labelled.
    """
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I", "I;16", "I;16B", "I;16L"):
            wide = np.asarray(im, dtype=np.int64)
            im = Image.fromarray(np.clip(wide >> 8 if wide.max() > 255 else wide, 0, 255).astype(np.uint8))
        return im.convert("RGB")


def resize_short_side(im: Image.Image, size: int) -> Image.Image:
    """Scale so the short side is `size`; the long side is truncated as torchvision does."""
    w, h = im.size
    new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    return im if new == (w, h) else im.resize(new, Image.Resampling.BILINEAR)


def center_crop(im: Image.Image, height: int, width: int | None = None) -> Image.Image:
    """Central `height` x `width` window (offsets rounded as torchvision's CenterCrop rounds them)."""
    width = height if width is None else width
    w, h = im.size
    if w < width or h < height:
        raise ValueError(f"cannot crop {height}x{width} (HxW) from a {w}x{h} image: resize must be >= crop")
    left = int(round((w - width) / 2.0))
    top = int(round((h - height) / 2.0))
    return im.crop((left, top, left + width, top + height))


def _fit(im: Image.Image, prep: Preprocessing) -> np.ndarray:
    """The resized pixels, HWC float32 in 0-255, at exactly the tensor's height and width."""
    height, width = prep.crop
    if prep.mode == "crop":
        return np.asarray(center_crop(resize_short_side(im, prep.resize), height, width), dtype=np.float32)
    if prep.mode == "exact":
        fitted = im if im.size == (width, height) else im.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(fitted, dtype=np.float32)
    w, h = im.size  # pad: fit inside, keep the aspect ratio, fill the rest
    ratio = min(width / w, height / h)
    new = (max(1, min(width, round(w * ratio))), max(1, min(height, round(h * ratio))))
    pixels = np.asarray(im if new == (w, h) else im.resize(new, Image.Resampling.BILINEAR), dtype=np.float32)
    canvas = np.full((height, width, pixels.shape[2]), prep.pad_value, dtype=np.float32)
    top, left = (0, 0) if prep.align == "start" else ((height - new[1]) // 2, (width - new[0]) // 2)
    canvas[top:top + new[1], left:left + new[0]] = pixels
    return canvas


def preprocess(path: Path, prep: Preprocessing) -> np.ndarray:
    """One image as a float32 array in `prep`'s layout (CHW or HWC; rows are the image's rows, never transposed)."""
    return preprocess_image(load_rgb(path), prep)


def preprocess_image(im: Image.Image, prep: Preprocessing) -> np.ndarray:
    """`preprocess` for an already decoded RGB image (input-level mutations alter the photo first)."""
    if prep.channels == "L":
        im = im.convert("L").convert("RGB")  # luma first, so the resize filters one channel's values
    hwc = _fit(im, prep)
    if prep.channels == "L":
        hwc = hwc[:, :, :1]
    elif prep.channels == "BGR":
        hwc = hwc[:, :, ::-1]
    if prep.scale != 1.0:
        hwc = hwc * np.float32(prep.scale)
    mean = np.asarray(prep.mean, dtype=np.float32)
    std = np.asarray(prep.std, dtype=np.float32)
    out = (hwc - mean) / std
    return np.ascontiguousarray(out if prep.layout == "NHWC" else out.transpose(2, 0, 1))


def build_inputs(dataset: Dataset, prep: Preprocessing) -> np.ndarray:
    """The whole dataset as one float32 batch in `prep`'s tensor shape, in dataset order."""
    batch = np.empty(prep.tensor_shape(len(dataset.paths)), dtype=np.float32)
    for i, path in enumerate(dataset.paths):
        batch[i] = preprocess(path, prep)
    return batch
