"""Which images a study runs on, in a fixed order, with their labels (in the model's classes) where known.

The order is the sorted relative path, so every stage and every device sees image i as the same
photo; the outputs of different runs line up by position and by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from deltamut.data import labels as label_files
from deltamut.models.labels import class_index, class_names, lookup_class

# Suffixes that count as image files when bare-integer labels are lined up with sorted file names.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".ppm", ".pgm", ".pnm"})


@dataclass
class Dataset:
    """Images and labels of one study; `labels[i]` is -1 where the class of `paths[i]` is unknown."""

    ids: list[str]
    paths: list[Path]
    labels: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask of the images with a known class (accuracy is computed on these only)."""
        return self.labels >= 0


def load_dataset(images: Path, labels: Path | None = None, limit: int | None = None,
                 names: list[str] | None = None, window: tuple[int, int] | None = None) -> Dataset:
    """Collect the readable images below `images` (recursively, sorted) and attach their labels.

    `names` are the model's classes (ImageNet-1k's when None). Labels come from `labels` when given (CSV,
    bare integers or `file class` lines, by id or name, see `labels.read_labels`); otherwise from folder
    names that are class names (`cat/001.jpg`, the ImageFolder layout) or, for ImageNet's classes, WordNet
    ids (`n01440764/...`) and official validation file names; -1 where none applies. `limit` keeps the
    first readable images.
    Unreadable files are listed in `skipped` rather than stopping a long study.

    `window` = (start, stop) keeps one shard: the files at those positions of the sorted listing (labels are
    still lined up over the whole listing). A shard's job cannot know how many files before it are readable, so
    there `limit` counts files, not readable images, and a shard may come out empty.
    """
    root = Path(images)
    if not root.is_dir():
        raise ValueError(f"image folder {root} does not exist or is not a folder")
    files = candidates(root)
    rel = [p.relative_to(root).as_posix() for p in files]
    image_rel = [r for r in rel if Path(r).suffix.lower() in IMAGE_SUFFIXES]
    known = label_files.read_labels(Path(labels), image_rel, names) if labels is not None \
        else _implicit_labels(rel, names)
    if window is not None:
        start, stop = window
        stop = stop if limit is None else min(stop, limit)
        files, rel, limit = files[start:stop], rel[start:stop], None

    ids, paths, classes, skipped = [], [], [], []
    for path, r in zip(files, rel, strict=True):
        if limit is not None and len(ids) >= limit:
            break
        reason = _unreadable(path)
        if reason:
            skipped.append((r, reason))
            continue
        ids.append(r)
        paths.append(path)
        classes.append(known.get(r, -1))
    if not ids and window is None:
        raise ValueError(f"image folder {root} holds no readable image")
    return Dataset(ids=ids, paths=paths, labels=np.asarray(classes, dtype=np.int64), skipped=skipped)


def candidates(root: Path) -> list[Path]:
    """Every regular file below `root` except hidden ones, in sorted relative-path order: the positions that
    shards cut (`deltamut.study.shards`)."""
    found = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _implicit_labels(rel: list[str], names: list[str] | None) -> dict[str, int]:
    """Labels that the layout itself states: a parent folder named as a class, or for ImageNet's classes a
    WordNet-id parent folder or an official val file name."""
    imagenet = names is None
    by_name = class_index(class_names() if imagenet else names)
    wnids = label_files.wnid_to_class() if imagenet else {}
    val = None
    found = {}
    for r in rel:
        parts = Path(r).parts
        folder = lookup_class(by_name, parts[-2]) if len(parts) > 1 else None
        if folder is not None:
            found[r] = folder
        elif len(parts) > 1 and parts[-2] in wnids:
            found[r] = wnids[parts[-2]]
        elif imagenet and label_files.val_index(parts[-1]) is not None:
            val = val if val is not None else label_files.val_name_to_class()
            if parts[-1] in val:
                found[r] = val[parts[-1]]
    return found


def _unreadable(path: Path) -> str | None:
    """Why PIL cannot decode `path`, or None; JPEGs decode at 1/8 scale so the check stays cheap."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return f"{type(err).__name__}: {err}"
    return None
