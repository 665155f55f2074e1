"""Photos -> model input tensors, the one place where pixels are resized, cropped and normalised.

Every framework, compiler and device in a study gets the very same array from here, so a
difference found later is the model's, never the input pipeline's. The geometry follows the
torchvision PIL pipeline (Resize(short side) -> CenterCrop), the usual reference for ImageNet models.
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


def center_crop(im: Image.Image, size: int) -> Image.Image:
    """Central `size` x `size` window (offsets rounded as torchvision's CenterCrop rounds them)."""
    w, h = im.size
    if w < size or h < size:
        raise ValueError(f"cannot crop {size}x{size} from a {w}x{h} image: resize must be >= crop")
    left = int(round((w - size) / 2.0))
    top = int(round((h - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def preprocess(path: Path, prep: Preprocessing) -> np.ndarray:
    """One image as a (3, crop, crop) float32 array: channel, then rows (height), then columns (width)."""
    return preprocess_image(load_rgb(path), prep)


def preprocess_image(im: Image.Image, prep: Preprocessing) -> np.ndarray:
    """`preprocess` for an already decoded RGB image (input-level mutations alter the photo first)."""
    hwc = np.asarray(center_crop(resize_short_side(im, prep.resize), prep.crop), dtype=np.float32)
    mean = np.asarray(prep.mean, dtype=np.float32)
    std = np.asarray(prep.std, dtype=np.float32)
    return np.ascontiguousarray(((hwc - mean) / std).transpose(2, 0, 1))


def build_inputs(dataset: Dataset, prep: Preprocessing) -> np.ndarray:
    """The whole dataset as one (N, 3, crop, crop) float32 batch, in dataset order."""
    batch = np.empty((len(dataset.paths), 3, prep.crop, prep.crop), dtype=np.float32)
    for i, path in enumerate(dataset.paths):
        batch[i] = preprocess(path, prep)
    return batch
