"""The kill matrix of mutants: which mutants the images noticed, under each optimisation and device.

One row per mutant, one column per (optimisation, device); the colour is the mutant's status and the text
the share of images whose top-1 label changed, because "killed" alone does not say whether one image in a
thousand or all of them noticed. Each column's mutation score is in its label.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.patches import Patch, Rectangle

from deltamut.compare.killmatrix import DETECTED, SCORED, MutantStatus
from deltamut.report.common import STATUS_COLOURS, add_note, new_figure, note_figure, save_figure, shorten

TITLE = "Kill matrix of mutants"


_SHORT = {MutantStatus.EQUIVALENT: "equiv.", MutantStatus.CRASHED: "crash", MutantStatus.DUPLICATE: "dup.",
          MutantStatus.NOT_COMPARABLE: "n/c", MutantStatus.STILLBORN: "no build", MutantStatus.TOOL_ERROR: "tool err."}


def _cell_text(status: str, pct: object) -> str:
    if status in _SHORT:
        return _SHORT[status]
    if pct is None or pd.isna(pct):
        return status or "?"
    return f"{float(pct):.0f}%"


def _score(column: pd.DataFrame) -> str:
    """Detected / scored mutants of one column, each duplicate counted once (compare.killmatrix)."""
    once = column[column["duplicate_of"].isna()] if "duplicate_of" in column else column
    scored = once["status"].isin(SCORED)
    if not scored.any():
        return "score –"
    return f"score {once['status'].isin(DETECTED).sum() / scored.sum():.2f}"


def _row_label(row: pd.Series) -> str:
    detail = [str(row[k]) for k in ("operator", "level") if k in row and isinstance(row[k], str) and row[k]]
    return shorten(f"{row['mutant']} ({', '.join(detail)})" if detail else str(row["mutant"]), 48)


def kill_matrix_plot(kill: pd.DataFrame, path: str | Path, model: str = "") -> Path:
    """Draw the kill matrix (the compare stage's `kill_matrix` table) to a PNG; a study without mutants gets
    a note instead."""
    title = f"{model}: {TITLE.lower()}" if model else TITLE
    if kill is None or kill.empty:
        return note_figure(path, title, "This study has no mutants: nothing to kill.")
    kill = kill.copy()
    kill["column"] = kill["opt"].astype(str) + " @ " + kill["device"].astype(str)
    if "category" in kill:  # a sweep's one-site mutants after the other mutants of the category, by site
        by = [c for c in ("category", "sweep", "site", "mutant") if c in kill]
        kill = kill.sort_values(by, kind="stable", na_position="first")
    mutants = list(dict.fromkeys(kill["mutant"]))
    columns = list(dict.fromkeys(kill["column"]))
    labels = {m: _row_label(kill[kill["mutant"] == m].iloc[0]) for m in mutants}
    n_rows, n_cols = len(mutants), len(columns)
    fig = new_figure(3.6 + 1.35 * n_cols, 1.6 + 0.38 * n_rows)
    ax = fig.add_subplot(1, 1, 1)
    for _, row in kill.iterrows():
        x, y = columns.index(row["column"]), mutants.index(row["mutant"])
        status = str(row["status"])
        colour = STATUS_COLOURS.get(status, "white")
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=colour, edgecolor="white", linewidth=1.5))
        text_colour = "white" if status in DETECTED else "black"
        text = _cell_text(status, row.get("top1_changed_pct"))
        if status != MutantStatus.DUPLICATE and isinstance(row.get("duplicate_of"), str):
            text += " (dup.)"  # the same outputs as another mutant: counted once
        ax.text(x, y, text, ha="center", va="center", fontsize=8, color=text_colour)
    scores = [_score(kill[kill["column"] == c]) for c in columns]
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_xticks(range(n_cols), [f"{c}\n{s}" for c, s in zip(columns, scores, strict=True)], fontsize=8)
    ax.set_yticks(range(n_rows), [labels[m] for m in mutants], fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel("optimisation @ device")
    ax.set_title(title, fontsize=10)
    present = [s for s in STATUS_COLOURS if (kill["status"] == s).any()] or list(STATUS_COLOURS)
    ax.legend(handles=[Patch(facecolor=STATUS_COLOURS[s], edgecolor="#888888", label=s) for s in present],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    missing = n_rows * n_cols - len(kill.drop_duplicates(["mutant", "column"]))
    notes = ["Cell text: images whose top-1 label changed against the original (%), on the images where the "
             "original ran; score = (killed + crashed) / (killed + crashed + survived), each duplicate counted once; "
             "n/c: the original failed on every image."]
    if missing:
        notes.append(f"{missing} empty cell(s): the mutant is not built under that optimisation.")
    unknown = sorted(set(kill["status"].astype(str)) - set(STATUS_COLOURS))
    if unknown:
        notes.append(f"Unknown status(es) drawn white: {', '.join(unknown)}.")
    add_note(fig, " ".join(notes))
    return save_figure(fig, path)
