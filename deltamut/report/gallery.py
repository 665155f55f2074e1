"""The gallery: the images whose top-1 label changed, each with its top-5 under every variant involved.

A changed label is the finding a person wants to see with their own eyes: the photo, what the baseline said
and what the variant said instead, with probabilities, so that a flip between two near-tied classes reads
differently from a confident wrong answer. Images are ranked by how many comparisons they flipped in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deltamut.outcome import Status
from deltamut.report.common import add_note, new_figure, note_figure, save_figure, shorten, variant_label
from deltamut.runner.outputs import Outputs

OK = Status.OK.value

TITLE = "Images whose top-1 label changed"
KIND_ORDER = {"framework": 0, "compiler": 1, "optimisation": 2, "device": 3, "mutant": 4}
THUMB_PX = 128
GALLERY_COLOURS = 128  # palette PNG: the gallery is text and thumbnails, it needs no true colour


def changed_images(per_image: pd.DataFrame) -> pd.DataFrame:
    """The (image, a, b) rows where both sides ran and their top-1 labels differ, images that flipped in the
    most comparisons first."""
    if per_image is None or per_image.empty:
        return pd.DataFrame(columns=["image", "kind", "a", "b", "label"])
    ok = (per_image.get("status_a", OK) == OK) & (per_image.get("status_b", OK) == OK)
    flipped = per_image["top1_a"].to_numpy() != per_image["top1_b"].to_numpy()
    rows = per_image[ok & flipped & (per_image["top1_a"] >= 0) & (per_image["top1_b"] >= 0)]
    rows = rows.assign(rank=rows["kind"].map(KIND_ORDER).fillna(9),
                       flips=rows.groupby("image")["image"].transform("size"))
    rows = rows.sort_values(["flips", "image", "rank"], ascending=[False, True, True], kind="stable")
    label = rows["label"] if "label" in rows else pd.Series(-1, index=rows.index)
    return pd.DataFrame({"image": rows["image"], "kind": rows["kind"], "a": rows["a"], "b": rows["b"],
                         "label": label}).reset_index(drop=True)


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax of a logit vector, unless it already is a probability vector (a model exported with its
    softmax), which a second softmax would flatten towards uniform."""
    x = np.asarray(logits, dtype=np.float64)
    if x.size and np.all(x >= 0) and np.all(x <= 1) and abs(x.sum() - 1.0) < 1e-3:
        return x
    e = np.exp(x - np.max(x))
    return e / e.sum()


def top5(out: Outputs | None, image: str) -> tuple[str, list[tuple[int, float]]]:
    """(status, [(class, probability)] * 5) of one image under one variant; an empty list when nothing usable
    came back (failed, NaN, zero-width logits, image missing)."""
    if out is None:
        return "missing", []
    where = np.flatnonzero(np.asarray(out.ids).astype(str) == image)
    if where.size == 0:
        return "missing", []
    i = int(where[0])
    status = str(out.status[i])
    row = out.logits[i] if out.logits.ndim == 2 else np.empty(0)
    if status != OK or row.size == 0 or not np.all(np.isfinite(row)):
        return (status if status != OK else Status.NAN.value), []
    p = probabilities(row)
    best = np.argsort(-p, kind="stable")[:5]
    return status, [(int(c), float(p[c])) for c in best]


def _thumbnail(path: str | Path | None) -> np.ndarray | None:
    if not path or not Path(path).is_file():
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB_PX, THUMB_PX))
            return np.asarray(im)
    except OSError:
        return None


def _name(names: Sequence[str], c: int) -> str:
    return names[c] if 0 <= c < len(names) else f"class {c}"


def _variants_of(changes: pd.DataFrame, reference: str, limit: int) -> tuple[list[str], set[str]]:
    """Which variants to show for one image (reference, then each baseline before the variant that changed)
    and which of them changed."""
    shown = [reference] if reference else []
    for _, r in changes.iterrows():
        shown += [v for v in (r["b"], r["a"]) if v not in shown]
    return shown[:limit], set(changes["a"])


def gallery_plot(per_image: pd.DataFrame, outputs: Mapping[str, Outputs | None], dataset: Mapping[str, Any],
                 path: str | Path, model: str = "", reference: str = "", names: Sequence[str] = (),
                 max_images: int = 12, max_variants: int = 6) -> Path:
    """One row per changed image: its thumbnail, then the top-5 (class, probability) under each variant
    involved, the changed top-1 in red and the true label marked with ✓ where the image is labelled."""
    title = f"{model}: {TITLE.lower()}" if model else TITLE
    changed = changed_images(per_image)
    if changed.empty:
        ran = per_image is not None and not per_image.empty and \
            ((per_image.get("status_a") == OK) & (per_image.get("status_b") == OK)).any()
        why = "No image changed its top-1 label in any comparison." if ran else \
            "No comparison had both sides run (every variant failed or the study is empty): nothing to show."
        return note_figure(path, title, why)
    paths = dict(zip(map(str, dataset.get("ids", [])), dataset.get("paths", []), strict=False))
    images = list(dict.fromkeys(changed["image"]))
    shown_images = images[:max_images]
    per_image_variants = {im: _variants_of(changed[changed["image"] == im], reference, max_variants)
                          for im in shown_images}
    n_cols = max(len(v) for v, _ in per_image_variants.values())
    fig = new_figure(1.6 + 2.45 * n_cols, 0.7 + 1.5 * len(shown_images))
    grid = fig.add_gridspec(len(shown_images), 1 + n_cols, width_ratios=[1.3] + [2.2] * n_cols, hspace=0.35,
                            wspace=0.08)
    truncated_variants = 0
    for r, image in enumerate(shown_images):
        label = int(changed.loc[changed["image"] == image, "label"].iloc[0])
        ax = fig.add_subplot(grid[r, 0])
        thumb = _thumbnail(paths.get(image))
        if thumb is None:
            ax.text(0.5, 0.5, "photo\nnot found", ha="center", va="center", fontsize=7, color="#555555")
        else:
            ax.imshow(thumb)
        ax.set_xticks([])
        ax.set_yticks([])
        truth = f"label: {shorten(_name(names, label), 18)}" if label >= 0 else "unlabelled"
        ax.set_xlabel(f"{shorten(image, 22)}\n{truth}", fontsize=7)
        variants, flipped = per_image_variants[image]
        all_changes = changed.loc[changed["image"] == image]
        truncated_variants += len({*all_changes["a"], *all_changes["b"]} - set(variants))
        for c, variant in enumerate(variants):
            status, best = top5(outputs.get(variant), image)
            _cell(fig.add_subplot(grid[r, 1 + c]), variant, status, best, names, label,
                  changed=variant in flipped, reference=variant == reference)
    fig.suptitle(title, fontsize=11, y=0.995)
    notes = ["Top-5 classes with softmax probabilities; red: a variant whose top-1 differs from its baseline "
             "(the reference, or for a mutant its unmutated original). ✓ marks the true label."]
    if len(images) > len(shown_images):
        notes.append(f"{len(images) - len(shown_images)} more changed image(s) not shown.")
    if truncated_variants:
        notes.append(f"{truncated_variants} more variant column(s) not shown (limit {max_variants} per image).")
    add_note(fig, " ".join(notes))
    return save_figure(fig, path, colours=GALLERY_COLOURS)


def _cell(ax, variant: str, status: str, best: list[tuple[int, float]], names: Sequence[str], label: int,
          changed: bool, reference: bool) -> None:
    ax.axis("off")
    header = shorten(variant_label(variant), 30) + (" (ref.)" if reference else "")
    ax.text(0.0, 1.0, header, transform=ax.transAxes, fontsize=7.5, weight="bold", va="top",
            color="#B22222" if changed else "black")
    if not best:
        ax.text(0.0, 0.78, f"no output ({status})", transform=ax.transAxes, fontsize=7, va="top", color="#8B0000")
        return
    for k, (c, p) in enumerate(best):
        mark = " ✓" if c == label else ""
        colour = "#B22222" if changed and k == 0 else ("#555555" if k else "black")
        ax.text(0.0, 0.80 - 0.155 * k, f"{shorten(_name(names, c), 21):<21} {p:5.3f}{mark}", transform=ax.transAxes,
                fontsize=7, family="DejaVu Sans Mono", va="top", color=colour)
