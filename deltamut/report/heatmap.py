"""The disagreement heatmap: how often each framework or compiled variant changes the reference's top-1 label.

Rows are what was varied in the software (a framework, or a TVM optimisation), columns where it ran (a
device; frameworks run on the host), so a glance tells whether a change follows the compiler or the board.
Cells of a variant that failed carry its verdict instead of a number: a crash is a finding, not a zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.patches import Rectangle

from deltamut.report.common import FAILED_VERDICTS, ORIGINAL, add_note, new_figure, note_figure, save_figure
from deltamut.study import PRIMARY

FRAMEWORK_COLUMN = "host (framework)"
TITLE = "Top-1 disagreement with the reference"


def _text(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _row_col(pair: pd.Series) -> tuple[str, str]:
    if pair["kind"] == "framework" or not _text(pair.get("device_a")):
        return str(pair["a"]), FRAMEWORK_COLUMN
    mutant = _text(pair.get("mutant_a"))
    row = _text(pair.get("opt_a")) or str(pair["a"])
    conversion = _text(pair.get("conversion_a"))
    if conversion and conversion != PRIMARY:
        row = f"{row} ({conversion})"
    if mutant and mutant != ORIGINAL:
        row = f"{row} / {mutant}"
    return f"tvm {row}", _text(pair["device_a"])


def _annotation(pair: pd.Series) -> str:
    verdict = _text(pair.get("verdict"))
    pct = pair.get("top1_disagreement_pct")
    if verdict in FAILED_VERDICTS or pct is None or pd.isna(pct):
        return verdict or "n/a"
    n = pair.get("n_compared")
    share = f"\n{round(pct * n / 100)}/{int(n)}" if n is not None and not pd.isna(n) and n > 0 else ""
    return f"{pct:.0f}%{share}" if pct == 0 or pct >= 10 else f"{pct:.1f}%{share}"


def disagreement_matrix(per_pair: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(values, annotations): top-1 disagreement % of every pair judged against the reference, as a
    variant x device table (frameworks in their own column); NaN where a variant failed or is absent."""
    against_ref = per_pair[per_pair["kind"].isin(["framework", "compiler"])] if len(per_pair) else per_pair
    cells: dict[tuple[str, str], tuple[float, str]] = {}
    rows: list[str] = []
    cols: list[str] = []
    for _, pair in against_ref.iterrows():
        row, col = _row_col(pair)
        pct = pair.get("top1_disagreement_pct")
        failed = _text(pair.get("verdict")) in FAILED_VERDICTS
        value = np.nan if failed or pct is None or pd.isna(pct) else float(pct)
        cells[(row, col)] = (value, _annotation(pair))
        rows += [row] if row not in rows else []
        cols += [col] if col not in cols else []
    rows.sort(key=lambda r: r.startswith("tvm "))  # frameworks first, then TVM in the study's order
    cols.sort(key=lambda c: c != FRAMEWORK_COLUMN)
    values = pd.DataFrame(np.nan, index=rows, columns=cols, dtype=float)
    notes = pd.DataFrame("", index=rows, columns=cols, dtype=object)
    for (row, col), (value, note) in cells.items():
        values.loc[row, col] = value
        notes.loc[row, col] = note
    return values, notes


def disagreement_heatmap(per_pair: pd.DataFrame, path: str | Path, model: str = "") -> Path:
    """Draw the heatmap of `disagreement_matrix` to a PNG; a study with no pair against the reference gets
    a note instead."""
    values, notes = disagreement_matrix(per_pair)
    title = f"{model}: {TITLE.lower()}" if model else TITLE
    if values.empty:
        return note_figure(path, title, "No framework or compiled variant was compared against the reference.")
    refs = sorted({str(b) for b in per_pair.loc[per_pair["kind"].isin(["framework", "compiler"]), "b"]})
    n_rows, n_cols = values.shape
    fig = new_figure(2.2 + 1.5 * n_cols, 1.2 + 0.55 * n_rows)
    ax = fig.add_subplot(1, 1, 1)
    cmap = colormaps["Reds"].with_extremes(bad="#DDDDDD")
    image = ax.imshow(np.ma.masked_invalid(values.to_numpy(dtype=float)), cmap=cmap, vmin=0, vmax=100,
                      aspect="auto")
    for i in range(n_rows):
        for j in range(n_cols):
            value = values.iat[i, j]
            note = notes.iat[i, j] or "–"
            colour = "white" if not np.isnan(value) and value > 60 else "black"
            if np.isnan(value) and notes.iat[i, j]:
                ax.add_patch(_hatch(j, i))
                colour = "#8B0000"
            ax.text(j, i, note, ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(n_cols), list(values.columns))
    ax.set_yticks(range(n_rows), list(values.index), fontsize=8)
    ax.set_xlabel("device")
    ax.set_title(f"{title} ({', '.join(refs)})", fontsize=10)
    fig.colorbar(image, ax=ax, label="images whose top-1 changed (%)", shrink=0.8)
    failed = int((np.isnan(values.to_numpy(dtype=float)) & (notes != "").to_numpy()).sum())
    if failed:
        add_note(fig, f"{failed} hatched cell(s): the variant failed (its verdict is written in the cell).")
    return save_figure(fig, path)


def _hatch(x: int, y: int) -> Rectangle:
    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, hatch="//", edgecolor="#999999", linewidth=0)
