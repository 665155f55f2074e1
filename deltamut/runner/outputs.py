"""The infer stage's result file: raw logits, latency of every repeat and a status per image.

Raw outputs are kept (not only the top-5) so that any comparison can be recomputed later with other
metrics or thresholds. `meta` carries provenance: versions, target, device, host, settings and events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deltamut.fsutil import write_npz


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
    # (N,) max |logit difference| between the main run and each rerun in a fresh process (RunSettings.reruns):
    # inf where the runs ended differently (one crashed, the other did not), NaN where no rerun could be
    # compared (not rerun, or no logits in both runs). Separate from repeat_spread because it catches what
    # one process cannot see: a fresh library load, thread-pool start or uninitialised memory.
    rerun_spread: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.repeat_spread is None:
            self.repeat_spread = np.full(len(self.ids), np.nan)
        if self.rerun_spread is None:
            self.rerun_spread = np.full(len(self.ids), np.nan)

    @property
    def nondeterministic(self) -> np.ndarray:
        """Images whose repeats or reruns disagreed: flaky outputs, flagged before any discrepancy is reported."""
        repeat = np.nan_to_num(np.asarray(self.repeat_spread, dtype=np.float64), nan=0.0) > 0
        return repeat | (np.nan_to_num(np.asarray(self.rerun_spread, dtype=np.float64), nan=0.0) > 0)

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
        meta=np.array(json.dumps(out.meta, sort_keys=True, default=str)),
    )


def load_outputs(path: str | Path) -> Outputs:
    with np.load(path, allow_pickle=False) as z:
        return Outputs(
            ids=z["ids"],
            logits=z["logits"],
            latency_ms=z["latency_ms"],
            status=z["status"],
            error=z["error"],
            meta=json.loads(str(z["meta"])),
            repeat_spread=z["repeat_spread"] if "repeat_spread" in z.files else None,
            # Files written before reruns existed lack the field: no rerun was compared.
            rerun_spread=z["rerun_spread"] if "rerun_spread" in z.files else None,
        )
