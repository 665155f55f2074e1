"""Failure records never live in Snakemake's between-workflow cache.

A cached rule (export, import, compile) that cannot make its artifact writes a failure record in its place
(`deltamut.failure`), and Snakemake, which sees a successful job, stores that record in the cache like any
artifact: a compile that timed out once would then be served as a timeout to every later study. Snakemake
has no hook to keep a job's output out of the cache, so the records are evicted instead: before a workflow
plans (records left by earlier ones) and when it ends (its own), with the workflow's own result files, which
Snakemake had turned into symlinks to the cache entries, turned back into plain files so that this
workflow's results still say what failed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from deltamut.failure import read_failure

__all__ = ["evict_failures"]


def _is_record(path: Path) -> bool:
    try:
        return path.is_file() and read_failure(path) is not None
    except (OSError, ValueError):
        return False


def evict_failures(cache_dir: str | os.PathLike, results: str | os.PathLike | None = None) -> list[Path]:
    """Remove every failure record from `cache_dir`; first replace each symlink under `results` that points at
    one by a copy of the record. Returns the cache entries removed."""
    cache = Path(cache_dir)
    if not cache.is_dir():
        return []
    if results is not None and Path(results).is_dir():
        for root, _dirs, files in os.walk(results):
            for name in files:
                link = Path(root) / name
                if link.is_symlink() and Path(os.path.realpath(link)).parent == cache.resolve() and _is_record(link):
                    target = Path(os.path.realpath(link))
                    link.unlink()
                    shutil.copyfile(target, link)
    evicted = [entry for entry in cache.iterdir() if _is_record(entry)]
    for entry in evicted:
        entry.unlink()
    return evicted
