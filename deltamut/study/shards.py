"""Shards of a study's dataset (`dataset.shard_size`): which images each per-shard job preprocesses and runs.

A dataset of 50,000 photos is 30 GB of tensors in one file, and one job per variant that holds all of it. With
`shard_size: S`, the images are cut into consecutive runs of S files of the sorted listing (the order every
stage uses, `deltamut.data.dataset`), and the dataset, reference and infer jobs run once per shard (the
`{shard}` wildcard, `deltamut.paths`): a job's memory is bounded by S, whatever the image count, and the shards
of one variant can run on different nodes. Compare reads a variant's shards in order, so its tables are those
of the unsharded study.

The shard count must be known when the study is planned, before any image is decoded: it is worked out from
the listing of the image folder (for the default photos, which are gathered by a job, from the size of their
catalogue: a shard past the photos this machine could gather is empty), capped by `dataset.limit`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from deltamut.paths import UNSHARDED
from deltamut.study.catalog import StudyError

# The prefix of a shard's `{shard}` wildcard (an unsharded study's is `paths.UNSHARDED`).
PREFIX = ".shard"
WILDCARD = r"(\.shard[0-9]+)?"


@dataclass(frozen=True)
class Shard:
    """One shard: its wildcard value and the positions [start, stop) of its files in the sorted listing."""

    suffix: str
    start: int
    stop: int

    def window(self) -> dict[str, int]:
        """What a dataset job is told of its shard (a param: changing shard_size reruns the dataset jobs)."""
        return {"start": self.start, "stop": self.stop}


def suffix(k: int) -> str:
    return f"{PREFIX}{k}"


def image_count(images: str) -> int:
    """How many files the dataset's listing holds, known without decoding any (see the module's note)."""
    if images == "default":
        from deltamut.data.photos import CATALOGUE

        return len(CATALOGUE)
    from deltamut.data.dataset import candidates

    root = Path(images)  # relative to the working directory, as the dataset jobs read it
    if not root.is_dir():
        raise StudyError(f"dataset.images: {images} is not a folder; a sharded dataset (dataset.shard_size) "
                         "is cut from its listing when the study is planned, so it must exist by then")
    return len(candidates(root))


def plan_shards(dataset: dict) -> list[Shard]:
    """The shards of a study's dataset: one unsharded 'shard' without `shard_size`."""
    size = dataset.get("shard_size")
    if not size:
        return [Shard(UNSHARDED, 0, -1)]
    n = image_count(dataset.get("images", "default"))
    if dataset.get("limit"):
        n = min(n, int(dataset["limit"]))
    return [Shard(suffix(k), k * size, min((k + 1) * size, n)) for k in range(max(1, math.ceil(n / size)))]
