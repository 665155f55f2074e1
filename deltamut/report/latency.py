"""Latency distributions: per-image latency of every variant, grouped by optimisation, frameworks beside.

One point per image (the median of its timed repeats after warm-up), so the box shows how latency varies
over inputs, not over the timer's noise. A variant that never ran keeps its row with its status written in,
so a missing box is not mistaken for a fast one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.patches import Patch

from deltamut.outcome import Status
from deltamut.report.common import (
    ORIGINAL,
    add_note,
    new_figure,
    note_figure,
    save_figure,
    variant_label,
)
from deltamut.study.refs import parse_variant_id

TITLE = "Per-image latency"
FRAMEWORK_GROUP = "frameworks"
COLUMNS = ["variant", "framework", "opt", "mutant", "device", "image", "status", "latency_ms"]


def latency_frame(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, image) with its latency and status, gathered from both sides of every pair of
    the compare stage's per-image table (a variant appears once however many pairs it is in)."""
    if per_image is None or per_image.empty:
        return pd.DataFrame(columns=COLUMNS)
    sides = []
    for side in ("a", "b"):
        part = pd.DataFrame({
            "variant": per_image[side].astype(str),
            "image": per_image["image"].astype(str),
            "status": per_image.get(f"status_{side}", pd.Series(Status.OK.value, index=per_image.index)).astype(str),
            "latency_ms": pd.to_numeric(per_image.get(f"latency_{side}_ms", pd.Series(np.nan, index=per_image.index)),
                                        errors="coerce"),
        })
        # the table's own coordinates where it has them; parsed from the variant id otherwise
        parsed = pd.DataFrame([parse_variant_id(v) for v in part["variant"]], index=part.index)
        for coord in ("framework", "opt", "mutant", "device"):
            given = per_image.get(f"{coord}_{side}")
            if given is None:
                part[coord] = parsed[coord]
            else:
                given = given.fillna("").astype(str)
                part[coord] = given.where(given != "", parsed[coord])
        sides.append(part)
    frame = pd.concat(sides, ignore_index=True).drop_duplicates(["variant", "image"], keep="first")
    frame.loc[~np.isfinite(frame["latency_ms"]) | (frame["latency_ms"] <= 0), "latency_ms"] = np.nan
    return frame[COLUMNS].reset_index(drop=True)


def _coords(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    return frame.drop_duplicates("variant").set_index("variant")[["framework", "opt", "mutant"]].to_dict("index")


def _order(frame: pd.DataFrame, reference: str) -> list[str]:
    """Frameworks first (the reference on top), then per optimisation the original before its mutants."""
    variants = list(dict.fromkeys(frame["variant"]))
    opts = list(dict.fromkeys(frame.loc[frame["framework"] == "tvm", "opt"]))
    coords = _coords(frame)

    def key(v: str) -> tuple:
        c = coords[v]
        if c["framework"] != "tvm":
            return (0, v != reference, variants.index(v))
        return (1, opts.index(c["opt"]), c["mutant"] != ORIGINAL, variants.index(v))

    return sorted(variants, key=key)


def latency_plot(frame: pd.DataFrame, path: str | Path, model: str = "", reference: str = "") -> Path:
    """Horizontal box plots of `latency_frame`, coloured by optimisation; log scale when latencies span more
    than a factor of 20."""
    title = f"{model}: {TITLE.lower()}" if model else TITLE
    if frame is None or frame.empty:
        return note_figure(path, title, "No variant was timed: there are no per-image results.")
    order = _order(frame, reference)
    has_frameworks = bool((frame["framework"] != "tvm").any())
    groups = [FRAMEWORK_GROUP] * has_frameworks + list(dict.fromkeys(frame.loc[frame["framework"] == "tvm", "opt"]))
    palette = colormaps["tab10"]
    colours = {g: palette(i % 10) for i, g in enumerate(g for g in groups if g != FRAMEWORK_GROUP)}
    colours[FRAMEWORK_GROUP] = "#777777"
    timed = frame.dropna(subset=["latency_ms"])
    if timed.empty:
        return note_figure(path, title, "No variant produced a timing (every variant failed or was not run).")
    fig = new_figure(9.0, 1.3 + 0.32 * len(order))
    ax = fig.add_subplot(1, 1, 1)
    coords = _coords(frame)
    rng = np.random.default_rng(0)  # jitter only: fixed so the PNG is reproducible
    untimed = []
    for y, variant in enumerate(order):
        rows = frame[frame["variant"] == variant]
        values = rows["latency_ms"].dropna().to_numpy(dtype=float)
        c = coords[variant]
        colour = colours[FRAMEWORK_GROUP if c["framework"] != "tvm" else c["opt"]]
        if values.size == 0:
            failed = rows.loc[rows["status"] != Status.OK, "status"]
            why = failed.mode().iat[0] if not failed.empty else "no timings"
            ax.text(float(np.median(timed["latency_ms"])), y, f"not timed ({why})", va="center", ha="center",
                    fontsize=7, color="#8B0000")
            untimed.append(variant)
            continue
        ax.boxplot([values], positions=[y], orientation="horizontal", widths=0.6, patch_artist=True,
                   showfliers=False, medianprops={"color": "black"},
                   boxprops={"facecolor": colour, "alpha": 0.45, "edgecolor": colour})
        ax.scatter(values, y + rng.uniform(-0.18, 0.18, values.size), s=9, color=colour, zorder=3,
                   edgecolors="none")
    low, high = float(timed["latency_ms"].min()), float(timed["latency_ms"].max())
    log = high / low > 20
    if log:
        ax.set_xscale("log")
    ax.set_yticks(range(len(order)), [variant_label(v) + (" (reference)" if v == reference else "")
                                       for v in order], fontsize=8)
    ax.set_ylim(len(order) - 0.5, -0.5)
    ax.set_xlabel("latency per image (ms, median of repeats" + (", log scale)" if log else ")"))
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.set_title(title, fontsize=10)
    ax.legend(handles=[Patch(facecolor=colours[g], alpha=0.6, label=g) for g in groups],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, title="optimisation")
    notes = ["One point per image: the median of its timed repeats after warm-up."]
    if untimed:
        notes.append(f"{len(untimed)} variant(s) without timings (failed, or equivalent to the original "
                     "and not run).")
    add_note(fig, " ".join(notes))
    return save_figure(fig, path)
