"""Input-level operators: seeded, parameterised changes to the images a model sees.

The compiled module is the original for these mutants; what changes is the data, transformed by
`transform_image` at inference time. Pure PIL + numpy: no TVM, so a data loader can call it cheaply.
"""

from __future__ import annotations

import io
from typing import Any

from .base import MutationSpecError, Operator, Report, register


class _InputOperator(Operator):
    category = "Input-level"
    level = "input"

    def apply(self, module: Any) -> tuple[Any, Report]:
        report = Report(candidates=0)
        report.notes.append("input-level mutant: the module is the original; images change via transform_image")
        return module, report

    def transform(self, img: Any, rng: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


def _positive(op: Operator, key: str) -> None:
    v = op.p[key]
    if not isinstance(v, int | float) or v <= 0:
        raise MutationSpecError(f"{op.name}: {key} must be > 0, got {v!r}")


@register
class Brightness(_InputOperator):
    name = "brightness"
    description = "Scale brightness by `factor` (1 = unchanged)."
    params = {"factor": 1.5}

    def validate(self) -> None:
        _positive(self, "factor")

    def transform(self, img: Any, rng: Any) -> Any:
        from PIL import ImageEnhance

        return ImageEnhance.Brightness(img).enhance(float(self.p["factor"]))


@register
class Contrast(_InputOperator):
    name = "contrast"
    description = "Scale contrast by `factor` (1 = unchanged)."
    params = {"factor": 0.5}

    def validate(self) -> None:
        _positive(self, "factor")

    def transform(self, img: Any, rng: Any) -> Any:
        from PIL import ImageEnhance

        return ImageEnhance.Contrast(img).enhance(float(self.p["factor"]))


@register
class GaussianNoise(_InputOperator):
    name = "gaussian_noise"
    description = "Add i.i.d. N(0, sigma^2) noise per pixel and channel, sigma in 0-255 units, then clip."
    params = {"sigma": 10.0}

    def validate(self) -> None:
        _positive(self, "sigma")

    def transform(self, img: Any, rng: Any) -> Any:
        import numpy as np
        from PIL import Image

        arr = np.asarray(img, dtype=np.float32)
        noisy = arr + rng.normal(0.0, float(self.p["sigma"]), size=arr.shape)
        return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), mode=img.mode)


@register
class Blur(_InputOperator):
    name = "blur"
    description = "Gaussian blur with `radius` pixels."
    params = {"radius": 2.0}

    def validate(self) -> None:
        _positive(self, "radius")

    def transform(self, img: Any, rng: Any) -> Any:
        from PIL import ImageFilter

        return img.filter(ImageFilter.GaussianBlur(float(self.p["radius"])))


@register
class Rotation(_InputOperator):
    name = "rotation"
    description = (
        "Rotate by `degrees` (counter-clockwise) about the centre, keeping the size; with `random: true` "
        "the angle is drawn uniformly from [-degrees, degrees] with the seed."
    )
    params = {"degrees": 15.0, "random": False, "fill": 0}

    def transform(self, img: Any, rng: Any) -> Any:
        from PIL import Image

        deg = float(self.p["degrees"])
        angle = float(rng.uniform(-deg, deg)) if self.p["random"] else deg
        fill = self.p["fill"]
        fill = tuple([fill] * len(img.getbands())) if isinstance(fill, int) else tuple(fill)
        return img.rotate(angle, resample=Image.Resampling.BILINEAR, expand=False, fillcolor=fill)


@register
class Jpeg(_InputOperator):
    name = "jpeg"
    description = "Re-encode as JPEG at `quality` (1-95) and decode again: compression artefacts."
    params = {"quality": 20}

    def validate(self) -> None:
        q = self.p["quality"]
        if not isinstance(q, int) or not 1 <= q <= 95:
            raise MutationSpecError(f"jpeg: quality must be an int in [1, 95], got {q!r}")

    def transform(self, img: Any, rng: Any) -> Any:
        from PIL import Image

        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=int(self.p["quality"]))
        buf.seek(0)
        out = Image.open(buf)
        out.load()
        return out.convert(img.mode) if img.mode != "RGB" else out


def transform_image(img: Any, spec: dict[str, Any], seed: int) -> Any:
    """Apply an input-level catalog entry to one image.

    `seed` should differ per image (e.g. hash of the image id and the study seed) so that noise is not
    the same pattern on every image, yet the same on every run and every device.
    """
    import numpy as np

    from .base import get_operator

    op = get_operator(spec)
    if not isinstance(op, _InputOperator):
        raise MutationSpecError(f"operator {op.name!r} is not input-level")
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, op.seed & 0xFFFFFFFF])
    return op.transform(img, rng)
