"""What the report's figures share: the headless backend, atomic PNG output, notes, variant labels."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # a cluster node or CI runner has no display; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from deltamut.compare.killmatrix import MutantStatus  # noqa: E402
from deltamut.compare.verdicts import SEVERITY, Verdict  # noqa: E402
from deltamut.fsutil import atomic_path  # noqa: E402
from deltamut.study.refs import ORIGINAL, TVM, parse_variant_id  # noqa: E402

DPI = 100
# Okabe-Ito colours: told apart by colour-blind readers and in greyscale print.
STATUS_COLOURS = {MutantStatus.KILLED: "#D55E00", MutantStatus.CRASHED: "#000000", MutantStatus.SURVIVED: "#56B4E9",
                  MutantStatus.EQUIVALENT: "#BBBBBB", MutantStatus.DUPLICATE: "#E4E4E4",
                  MutantStatus.NOT_COMPARABLE: "#F0E442", MutantStatus.STILLBORN: "#CC79A7",
                  MutantStatus.TOOL_ERROR: "#E69F00"}
# Verdicts written in a cell instead of a number: a failure of the variant, or of its baseline (not comparable)
FAILED_VERDICTS = frozenset({*(v.value for v in SEVERITY[SEVERITY.index(Verdict.SKIPPED):]),
                             Verdict.NOT_COMPARABLE.value})


def new_figure(width_in: float, height_in: float) -> Figure:
    """A figure sized in inches and clamped, so a huge study gives a tall PNG rather than a 100 MB one."""
    return plt.figure(figsize=(min(max(width_in, 4.0), 40.0), min(max(height_in, 2.0), 80.0)), dpi=DPI)


# The PNG text key that says what a figure file holds: "plot", or "note: <why there is no plot>"; a reader (a
# test, a script) can tell a drawn figure from a note without looking at the pixels.
CONTENT_KEY = "deltamut"


def save_figure(fig: Figure, path: str | Path, colours: int = 0, note: str | None = None) -> Path:
    """Write the PNG atomically (a killed job leaves no half-written image that Snakemake would trust), with
    the notes placed under everything else; `colours` > 0 re-encodes it with that many palette colours,
    which shrinks a photo-and-text figure several times at no visible cost. `note`: the figure is a note
    standing in for a plot (recorded in the PNG's `CONTENT_KEY` text)."""
    path = Path(path)
    content = "plot" if note is None else f"note: {note}"
    try:
        _place_notes(fig)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight", facecolor="white",
                        metadata={CONTENT_KEY: content})
            if colours:
                from PIL import Image, PngImagePlugin

                info = PngImagePlugin.PngInfo()
                info.add_text(CONTENT_KEY, content)
                with Image.open(tmp) as im:
                    small = im.convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
                small.save(tmp, format="PNG", optimize=True, pnginfo=info)
    finally:
        plt.close(fig)
    return path


def add_note(fig: Figure, text: str) -> None:
    """A grey line under the plot saying what it leaves out (no mutants, failed variants, truncation); placed
    when the figure is saved, below the tick labels and axis titles whose size is known only then."""
    fig._deltamut_notes = [*getattr(fig, "_deltamut_notes", []), text]


def _place_notes(fig: Figure) -> None:
    notes = getattr(fig, "_deltamut_notes", [])
    if not notes:
        return
    box = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
    width, height = fig.get_figwidth(), fig.get_figheight()
    wrap = max(60, int(box.width * 15))  # about 15 characters of 8 pt text per inch
    fig.text(box.x0 / width, (box.y0 - 0.08) / height, "\n".join(textwrap.wrap(" ".join(notes), wrap)),
             ha="left", va="top", fontsize=8, color="#555555")


def note_figure(path: str | Path, title: str, note: str) -> Path:
    """A small figure holding only a title and a sentence: the plot has nothing to show, and says why."""
    fig = new_figure(7.0, 1.6)
    fig.text(0.5, 0.65, title, ha="center", va="center", fontsize=12, weight="bold")
    fig.text(0.5, 0.35, "\n".join(textwrap.wrap(note, 90)), ha="center", va="center", fontsize=9, color="#555555")
    return save_figure(fig, path, note=note)


def variant_label(variant: str) -> str:
    """`tvm/default/mnn11/cpu` -> `default / mnn11 @ cpu`, `tvm@torch-export/default/original/cpu` ->
    `default (torch-export) @ cpu`; a framework id stays as it is."""
    c = parse_variant_id(variant)
    if c["framework"] != TVM:
        return str(variant)
    opt = f"{c['opt']} ({c['conversion']})" if c["conversion"] else c["opt"]
    return f"{opt} @ {c['device']}" if c["mutant"] == ORIGINAL else f"{opt} / {c['mutant']} @ {c['device']}"


def shorten(text: str, width: int) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"
