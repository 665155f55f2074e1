"""The infer stage's result file: raw logits, latency of every repeat and a status per image.

Raw outputs are kept (not only the top-5) so that any comparison can be recomputed later with other
metrics or thresholds. `meta` carries provenance: versions, target, device, host, settings and events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deltamut.fsutil import as_files, write_npz
from deltamut.outcome import FAILED, Status

_FAILED = np.array(sorted(s.value for s in FAILED))


@dataclass
class Outputs:
    ids: np.ndarray  # (N,) str
    logits: np.ndarray  # (N, C) float32; NaN rows where nothing came back
    latency_ms: np.ndarray  # (N, R) float64; NaN where not measured
    status: np.ndarray  # (N,) str: deltamut.outcome.Status values
    error: np.ndarray  # (N,) str: why an image failed ("" when ok)
    meta: dict[str, Any] = field(default_factory=dict)
    # (N,) max |logit difference| between repeats of the same image: 0 for a deterministic backend,
    # NaN where an image was not repeated (or never ran).
    repeat_spread: np.ndarray | None = None
    # (N,) max |logit difference| between the main run and each rerun in a fresh process (RunSettings.reruns)
    # where both returned logits; NaN where no rerun could be compared (not rerun, or a run failed). Separate
    # from repeat_spread because it catches what one process cannot see: a fresh library load, thread-pool
    # start or uninitialised memory. It is always finite: a run that failed is a status, not a distance.
    rerun_spread: np.ndarray | None = None
    # (N, K) status of each image in each of the K reruns ("" where the image was not rerun).
    rerun_status: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.repeat_spread is None:
            self.repeat_spread = np.full(n, np.nan)
        if self.rerun_spread is None:
            self.rerun_spread = np.full(n, np.nan)
        if self.rerun_status is None:
            self.rerun_status = np.full((n, 0), "", dtype=object)
        rerun = np.asarray(self.rerun_status, dtype=str)
        self.rerun_status = rerun.reshape(n, rerun.size // n if n else 0)

    @property
    def observed_status(self) -> np.ndarray:
        """Per image, the status a comparison must see: the main run's, unless the main run was ok and a rerun
        failed (crash, timeout, NaN, error), in which case that failure. A failure seen in any run is a failure
        of this side, never a spread of its outputs."""
        status = np.asarray(self.status).astype(str).copy()
        for k in range(self.rerun_status.shape[1]):
            rerun = self.rerun_status[:, k]
            hit = (status == Status.OK.value) & np.isin(rerun, _FAILED)
            status[hit] = rerun[hit]
        return status

    @property
    def intermittent(self) -> np.ndarray:
        """Images whose status differed between the main run and a rerun (a crash in one process only)."""
        status = np.asarray(self.status).astype(str)
        rerun = self.rerun_status
        return ((rerun != "") & (rerun != status[:, None])).any(axis=1)

    @property
    def spread(self) -> np.ndarray:
        """Per image, how far this backend's own runs moved the logits (the larger of repeat and rerun spread),
        0 where nothing was measured. Always finite: a run that failed is an observed status, never a
        tolerance that would excuse any difference."""
        spreads = [np.asarray(self.repeat_spread, np.float64), np.asarray(self.rerun_spread, np.float64)]
        return np.fmax(*[np.where(np.isfinite(v), v, 0.0) for v in spreads])

    @property
    def nondeterministic(self) -> np.ndarray:
        """Images whose repeats or reruns disagreed, in outputs or in status: flagged before any discrepancy is
        reported."""
        repeat = np.nan_to_num(np.asarray(self.repeat_spread, dtype=np.float64), nan=0.0) > 0
        rerun = np.nan_to_num(np.asarray(self.rerun_spread, dtype=np.float64), nan=0.0, posinf=0.0) > 0
        return repeat | rerun | self.intermittent

    @property
    def top5(self) -> np.ndarray:
        filled = np.where(np.isnan(self.logits), -np.inf, self.logits)
        return np.argsort(-filled, axis=1, kind="stable")[:, :5]

    def median_latency_ms(self) -> np.ndarray:
        """Per-image median over repeats (NaN where an image was never timed)."""
        lat = self.latency_ms
        out = np.full(lat.shape[0], np.nan)
        measured = ~np.all(np.isnan(lat), axis=1)
        out[measured] = np.nanmedian(lat[measured], axis=1)
        return out


def save_outputs(path: str | Path, out: Outputs) -> None:
    write_npz(
        path,
        ids=out.ids.astype(str),
        logits=out.logits.astype(np.float32),
        latency_ms=out.latency_ms.astype(np.float64),
        status=out.status.astype(str),
        error=out.error.astype(str),
        top5=out.top5.astype(np.int64),
        repeat_spread=np.asarray(out.repeat_spread, dtype=np.float64),
        rerun_spread=np.asarray(out.rerun_spread, dtype=np.float64),
        rerun_status=np.asarray(out.rerun_status).astype(str),
        meta=np.array(json.dumps(out.meta, sort_keys=True, default=str)),
    )


def _rerun_status_from_meta(meta: dict[str, Any], status: np.ndarray) -> np.ndarray | None:
    """Rerun statuses of a file written before they were stored: every rerun ended like the main run but for
    the disagreements that `meta["reruns"]` lists."""
    reruns = meta.get("reruns") or {}
    k = int(reruns.get("runs", 1)) - 1
    if k < 1:
        return None
    out = np.repeat(np.asarray(status).astype(str)[:, None], k, axis=1).astype(object)
    for d in reruns.get("disagreements", []):
        out[int(d["index"]), int(d["rerun"]) - 1] = d["rerun_status"]
    return out


def load_outputs(path: str | Path | Sequence[str | Path]) -> Outputs:
    """A result file, or a sharded study's shards of one result (`deltamut.study.shards`) read as one."""
    return concat_outputs([_load_one(p) for p in as_files(path)])


def concat_outputs(parts: Sequence[Outputs]) -> Outputs:
    """The shards of one variant's result in image order, as the unsharded run would have written it.

    A shard that failed as a whole (its library never built, say) has no logits (width 0): its rows are NaN
    at the other shards' width, as a failed image's are. Latency columns are padded with NaN to the most
    repeats any shard measured. `meta` is the first shard's, with each shard's own under `shards` (shards of
    one variant may run on different nodes) and the first failed stage of any shard as the variant's.
    """
    if len(parts) == 1:
        return parts[0]
    width = max(p.logits.shape[1] for p in parts)
    repeats = max(p.latency_ms.shape[1] for p in parts)
    reruns = max(p.rerun_status.shape[1] for p in parts)

    def pad(a: np.ndarray, cols: int, fill: float | str) -> np.ndarray:
        a = np.asarray(a)
        if a.shape[1] == cols:
            return a
        out = np.full((a.shape[0], cols), fill, dtype=object if isinstance(fill, str) else a.dtype)
        out[:, :a.shape[1]] = a
        return out

    meta = dict(parts[0].meta)
    meta["shards"] = [p.meta for p in parts]
    meta["failed_stage"] = next((p.meta.get("failed_stage") for p in parts if p.meta.get("failed_stage")), "")
    return Outputs(
        ids=np.concatenate([np.asarray(p.ids).astype(str) for p in parts]),
        logits=np.concatenate([pad(p.logits, width, np.nan) for p in parts]).astype(np.float32),
        latency_ms=np.concatenate([pad(p.latency_ms, repeats, np.nan) for p in parts]),
        status=np.concatenate([np.asarray(p.status).astype(str) for p in parts]),
        error=np.concatenate([np.asarray(p.error).astype(str) for p in parts]),
        meta=meta,
        repeat_spread=np.concatenate([np.asarray(p.repeat_spread, np.float64) for p in parts]),
        rerun_spread=np.concatenate([np.asarray(p.rerun_spread, np.float64) for p in parts]),
        rerun_status=np.concatenate([pad(np.asarray(p.rerun_status).astype(object), reruns, "") for p in parts]),
    )


def _load_one(path: str | Path) -> Outputs:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        # Files written before reruns existed lack the spread: no rerun was compared. Older files marked runs that
        # ended differently with an infinite spread; their statuses now say so instead.
        spread = np.asarray(z["rerun_spread"], np.float64) if "rerun_spread" in z.files else None
        if spread is not None:
            spread = np.where(np.isinf(spread), np.nan, spread)
        return Outputs(
            ids=z["ids"],
            logits=z["logits"],
            latency_ms=z["latency_ms"],
            status=z["status"],
            error=z["error"],
            meta=meta,
            repeat_spread=z["repeat_spread"] if "repeat_spread" in z.files else None,
            rerun_spread=spread,
            rerun_status=z["rerun_status"] if "rerun_status" in z.files else _rerun_status_from_meta(meta, z["status"]),
        )
