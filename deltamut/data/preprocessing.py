"""How a model wants its pixels: explicit per model, so height and width are never swapped."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to `resize`, centre-crop `crop` x `crop`, then `(rgb - mean) / std` per channel.

    `mean` and `std` are in the 0-255 pixel scale, so both the torchvision convention
    (mean 0.485*255 ...) and the TF-Lite convention of EfficientNet-Lite (127, 128) are plain values.
    The result is NCHW float32 with H == W == crop: rows are image rows (height), never transposed.
    """

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        return cls(
            resize=int(d["resize"]),
            crop=int(d["crop"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
        )

    def scaled(self, crop: int) -> Preprocessing:
        """The same convention at another input size (tiny test studies use small crops)."""
        return Preprocessing(resize=round(crop * self.resize / self.crop), crop=crop, mean=self.mean,
                             std=self.std)


TORCHVISION = Preprocessing()
TFLITE = Preprocessing(resize=256, crop=224, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0))
