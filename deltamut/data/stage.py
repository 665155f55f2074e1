"""Entry points of the photos, dataset and input_mutant rules: a dataset folder -> one model's input batch,
written once and read by every variant."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deltamut.data.dataset import load_dataset
from deltamut.data.inputs import load_rgb, preprocess_image
from deltamut.data.labels import default_ground_truth
from deltamut.data.preprocessing import Preprocessing
from deltamut.fsutil import as_files, read_json, write_json, write_npz
from deltamut.models.labels import LABEL_SET, class_names

Transform = Callable[[Image.Image, int], Image.Image]


def prepare_inputs(images: str | Path, labels: str | Path | None, limit: int | None, prep: Preprocessing,
                   out_inputs: str | Path, out_manifest: str | Path, transform: Transform | None = None,
                   seed: int = 0, names: list[str] | None = None, window: Mapping[str, int] | None = None) -> int:
    """Preprocess every readable image; unreadable files are listed in the manifest, never fatal.

    `names` are the model's class names (ImageNet-1k's when None): labels may be given by name, and both
    outputs carry the names so that every table and figure reads in the model's own classes.

    `transform` is an input-level mutation applied to the decoded photo before resizing (JPEG
    re-encoding or rotation only make sense on the photo, not on the normalised tensor); image `i`
    gets seed `seed + i` so each image's perturbation is reproducible on its own.

    `window` ({start, stop}: file positions, `deltamut.study.shards`) preprocesses one shard; its images are
    numbered from `start`, so a shard's perturbations are those of the same images unsharded.
    """
    span = (window["start"], window["stop"]) if window else None
    ds = load_dataset(Path(images), Path(labels) if labels else None, limit, names, window=span)
    names = class_names() if names is None else list(names)
    first = span[0] if span else 0
    x = np.empty(prep.tensor_shape(len(ds)), dtype=np.float32)
    for i, path in enumerate(ds.paths):
        im = load_rgb(path)
        if transform is not None:
            im = transform(im, seed + first + i)
        x[i] = preprocess_image(im, prep)
    write_npz(out_inputs, x=x, ids=np.asarray(ds.ids, dtype=str), labels=ds.labels.astype(np.int64),
              classes=np.asarray(names, dtype=str))
    write_json(out_manifest, {
        "images": str(images), "labels": str(labels) if labels else None, "limit": limit,
        "count": len(ds), "labelled": int((ds.labels >= 0).sum()), "preprocessing": prep.to_dict(),
        "ids": ds.ids, "paths": [str(p) for p in ds.paths],
        "skipped": [{"path": p, "reason": r} for p, r in ds.skipped], "seed": seed, "classes": names,
        "shard": dict(window) if window else None,
    })
    return len(ds)


def read_manifest(files: str | Path | Sequence[str | Path]) -> dict[str, Any]:
    """The dataset's manifest as one, from its shards' manifests in image order (or from the one of an
    unsharded dataset): ids, paths and skipped files joined, counts summed, the rest the first shard's."""
    parts = [read_json(f) for f in as_files(files)]
    if len(parts) == 1:
        return parts[0]
    merged = {**parts[0], "shard": None, "shards": [p.get("shard") for p in parts]}
    for key in ("ids", "paths", "skipped"):
        merged[key] = [x for p in parts for x in p.get(key, [])]
    for key in ("count", "labelled"):
        merged[key] = sum(int(p.get(key, 0)) for p in parts)
    return merged


def photos_stage(*, outputs: Mapping[str, str]) -> int:
    """Gather the default real photos (Python packages, plus Debian packages when apt can fetch them)."""
    from deltamut.data.debian import default_debian_cache
    from deltamut.data.photos import gather_default_images

    found = gather_default_images(outputs["photos"], debian_cache=default_debian_cache())
    print(f"{len(found)} photos")
    return len(found)


def dataset_stage(*, outputs: Mapping[str, str], model: str, model_spec: dict[str, Any], images: str | Path,
                  labels: str | Path | None, limit: int | None, spec: dict[str, Any] | None = None,
                  window: Mapping[str, int] | None = None) -> int:
    """Preprocess the dataset (or the shard `window` of it) for one model into `outputs` inputs and manifest;
    with an input-level mutation's `spec`, every photo is transformed first (seeded per image)."""
    from deltamut.models import load_model

    info = load_model(model, model_spec)
    if info.label_set != LABEL_SET and labels is not None and Path(labels) == default_ground_truth():
        labels = None  # the packaged ground truth names ImageNet classes, which this model does not have
    transform, seed = None, 0
    if spec is not None:
        from deltamut.mutations import transform_image

        seed = int(spec.get("seed", 0))

        def transform(im, s):
            return transform_image(im, spec, s)

    return prepare_inputs(images, labels, limit, info.preprocessing, outputs["inputs"], outputs["manifest"],
                          transform=transform, seed=seed, names=info.class_names, window=window)
