"""How a model wants its pixels, as data: geometry, channel order, scale, normalisation and layout, per model.

Each field is a convention some exporter or training framework bakes into its models, and getting one wrong
does not crash anything: a BGR model fed RGB, or a [0,1] model fed 0-255, still returns confident labels,
only worse ones. So every field is explicit, named presets cover the common families, and height and width
are kept apart so they are never swapped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

RESIZE_MODES = ("crop", "exact", "pad")
CHANNEL_ORDERS = ("RGB", "BGR", "L")
LAYOUTS = ("NCHW", "NHWC")
ALIGNS = ("center", "start")
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Preprocessing:
    """Photo -> tensor: resize (`mode`), order the channels, then `(pixel * scale - mean) / std`, then lay out.

    `mode`: `crop` resizes the short side to `resize` and centre-crops `crop` (the torchvision and TF-Lite
    evaluation convention); `exact` resizes to `crop` ignoring the aspect ratio; `pad` resizes to fit inside
    `crop` keeping the aspect ratio and fills the rest with `pad_value` (a 0-255 pixel value), the image at
    the centre or, with `align: start`, at the top left (text-line models pad on the right).
    `crop` is the tensor's (height, width); an integer means a square. `channels` is the order of the
    tensor's channels (`L`: one grey channel, ITU-R 601 luma). `mean` and `std` are per tensor channel, in
    that order and in the units after `scale` (scale 1: the 0-255 pixel scale, so torchvision's mean is
    123.675 ...; scale 1/255: the [0,1] scale, mean 0.485 ...). `layout` is NCHW or NHWC.
    """

    resize: int = 256
    crop: tuple[int, int] = (224, 224)
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    mode: str = "crop"
    channels: str = "RGB"
    scale: float = 1.0
    layout: str = "NCHW"
    pad_value: float = 0.0
    align: str = "center"

    def __post_init__(self) -> None:
        crop = (self.crop, self.crop) if isinstance(self.crop, int) else tuple(int(v) for v in self.crop)
        object.__setattr__(self, "crop", crop)
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        problems = [f"{name} must be one of {', '.join(allowed)}, got {value!r}"
                    for name, value, allowed in (("mode", self.mode, RESIZE_MODES),
                                                 ("channels", self.channels, CHANNEL_ORDERS),
                                                 ("layout", self.layout, LAYOUTS), ("align", self.align, ALIGNS))
                    if value not in allowed]
        if len(crop) != 2 or min(crop) < 1:
            problems.append(f"crop must be a size >= 1 or [height, width], got {list(crop)}")
        if self.mode == "crop" and self.resize < max(crop):
            problems.append(f"resize {self.resize} is smaller than the crop {list(crop)}")
        for name in ("mean", "std"):
            if len(getattr(self, name)) != self.channel_count:
                problems.append(f"{name} needs {self.channel_count} value(s) for channels {self.channels}, "
                                f"got {list(getattr(self, name))}")
        if any(v <= 0 for v in self.std) or self.scale <= 0:
            problems.append("std and scale must be positive")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def height(self) -> int:
        return self.crop[0]

    @property
    def width(self) -> int:
        return self.crop[1]

    @property
    def channel_count(self) -> int:
        return 1 if self.channels == "L" else 3

    def tensor_shape(self, batch: int = 1) -> tuple[int, int, int, int]:
        """The input tensor this preprocessing produces, in its layout."""
        c, h, w = self.channel_count, self.height, self.width
        return (batch, c, h, w) if self.layout == "NCHW" else (batch, h, w, c)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["crop"] = list(self.crop)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: Preprocessing | None = None) -> Preprocessing:
        """A config mapping -> Preprocessing: `preset` (or `base`) filled in with the keys it gives.

        Raises ValueError naming an unknown key or preset, so a typo never silently keeps a default.
        """
        d = dict(d)
        preset = d.pop("preset", None)
        if preset is not None:
            base = preset_named(preset)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown preprocessing key(s) {', '.join(unknown)}; known: preset, "
                             f"{', '.join(sorted(known))}")
        if base is None:
            missing = [k for k in ("crop", "mean", "std") if k not in d]
            if missing:
                raise ValueError(f"a preprocessing mapping without a preset needs {', '.join(missing)}")
            base = cls()
        if "crop" in d and "resize" not in d and base.mode == "crop":  # keep the preset's resize/crop ratio
            return base.at_size(d.pop("crop")).with_(d)
        return base.with_(d)

    def with_(self, changes: dict[str, Any]) -> Preprocessing:
        return replace(self, **changes) if changes else self

    def at_size(self, crop: int | tuple[int, int] | list[int]) -> Preprocessing:
        """The same convention at another tensor size: `crop` mode keeps its resize-to-crop ratio."""
        size = (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))
        if size == self.crop:
            return self
        resize = round(min(size) * self.resize / min(self.crop)) if self.mode == "crop" else self.resize
        return replace(self, crop=size, resize=max(resize, max(size)) if self.mode == "crop" else resize)

    def scaled(self, crop: int) -> Preprocessing:
        """`at_size` under its older name (tiny test studies use small crops)."""
        return self.at_size(crop)


TORCHVISION = Preprocessing()
TFLITE = Preprocessing(resize=256, crop=224, mean=(127.0,) * 3, std=(128.0,) * 3)
# Keras / TF-slim Inception v3, v4, Inception-ResNet and Xception: the central 87.5% (299 of 342), [-1, 1].
INCEPTION = Preprocessing(resize=342, crop=299, mean=(127.5,) * 3, std=(127.5,) * 3)
# PaddleOCR's text-line direction classifier: 48 x 192, height-fitted, padded on the right, [-1, 1].
PADDLE_CLS = Preprocessing(resize=192, crop=(48, 192), mean=(0.5,) * 3, std=(0.5,) * 3, scale=1 / 255,
                           mode="pad", pad_value=127.5, align="start")
PRESETS = {"torchvision": TORCHVISION, "tflite": TFLITE, "inception": INCEPTION, "paddle-cls": PADDLE_CLS}


def preset_named(name: str) -> Preprocessing:
    if name not in PRESETS:
        raise ValueError(f"unknown preprocessing preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
