"""Kill rate by site: where in the model a sweep's one-site mutants are noticed.

A sweep mutates one site at a time (`mutations.sweep`); plotted against the site's depth (its position in the
model, 0 = first layer, 1 = last), the share of images whose label changed shows which layers the test
images are sensitive to, and the colour says how each mutant was judged.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deltamut.compare.killmatrix import DETECTED, SCORED
from deltamut.report.common import STATUS_COLOURS, add_note, new_figure, note_figure, save_figure

TITLE = "Kill rate by site"


def sites_plot(kill: pd.DataFrame, path: str | Path, model: str = "") -> Path:
    """One panel per sweep and (optimisation, device): top-1 changes (%) of each one-site mutant against its
    site's depth, coloured by status; the panel title counts the killed ones."""
    title = f"{model}: {TITLE.lower()}" if model else TITLE
    swept = kill[kill["sweep"].notna()] if kill is not None and "sweep" in kill else pd.DataFrame()
    if swept.empty:
        return note_figure(path, title, "This study has no sweep (`sites: each` or `sites: {sample: N}`): every "
                                        "mutant changes all of its sites at once.")
    groups = list(swept.groupby(["sweep", "opt", "device"], sort=True))
    fig = new_figure(6.5, 2.6 * len(groups) + 0.6)
    for i, ((sweep, opt, device), rows) in enumerate(groups, start=1):
        ax = fig.add_subplot(len(groups), 1, i)
        for status, part in rows.groupby("status"):
            ax.scatter(part["depth"].astype(float), part["top1_changed_pct"].astype(float).fillna(0.0), s=28,
                       color=STATUS_COLOURS.get(str(status), "white"), edgecolors="#444444", linewidths=0.5,
                       label=str(status), zorder=3)
        scored = rows[rows["status"].isin(SCORED) & rows["duplicate_of"].isna()]
        killed = int(scored["status"].isin(DETECTED).sum())
        ax.set_title(f"{sweep} ({rows['operator'].iloc[0]}) under {opt} @ {device}: {killed} of {len(scored)} "
                     f"one-site mutants killed", fontsize=9)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(-3, 103)
        ax.set_xlabel("site depth (0 = first layer, 1 = last)", fontsize=8)
        ax.set_ylabel("top-1 changed (%)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right", frameon=False)
    add_note(fig, "One point per one-site mutant of a sweep. Top-1 changed: images whose label differs from the "
                  "original's, among the images where the original ran.")
    fig.tight_layout()
    return save_figure(fig, path)
