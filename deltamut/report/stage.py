"""Entry point of the plots rule: one model's figures from its compare tables and raw outputs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from deltamut.data.stage import read_manifest
from deltamut.fsutil import as_files
from deltamut.plots import PLOTS
from deltamut.report.common import note_figure
from deltamut.report.gallery import changed_images, gallery_plot
from deltamut.report.heatmap import disagreement_heatmap
from deltamut.report.killmatrix import kill_matrix_plot
from deltamut.report.latency import latency_frame, latency_plot
from deltamut.report.sites import sites_plot
from deltamut.runner.outputs import Outputs, load_outputs

log = logging.getLogger(__name__)


def _read_table(path: str | Path | None) -> pd.DataFrame:
    return pd.read_parquet(path) if path and Path(path).is_file() else pd.DataFrame()


def _load(path: str | Path | None) -> Outputs | None:
    """A variant's outputs, or None when its file is missing or unreadable: the gallery then says so."""
    try:
        return load_outputs(path) if path else None
    except (OSError, ValueError, KeyError) as err:
        log.warning("cannot read outputs %s: %s", path, err)
        return None


def _names(manifest: Mapping[str, Any]) -> list[str]:
    """The model's class names as the dataset job recorded them (ImageNet's for a manifest older than that)."""
    from deltamut.models.labels import class_names

    return list(manifest.get("classes") or class_names())


def _draw(name: str, path: str | Path, title: str, draw: Callable[[], Path]) -> Path:
    """Draw one figure; if it fails, log the traceback and write a figure saying so, so that one broken
    plot does not take the other three, and the report, down with it."""
    try:
        return draw()
    except Exception as err:  # any failure of a plot must leave the report renderable
        log.exception("the %s plot failed", name)
        return note_figure(path, title, f"This plot could not be drawn: {type(err).__name__}: {err}")


def plots_stage(*, inputs: Mapping[str, Any], outputs: Mapping[str, str | Path], model: str,
                variants: Mapping[str, Mapping[str, Any]], reference: str) -> dict[str, Path]:
    """Write the PNGs named in `outputs` (keys: `PLOTS`) for one model.

    `inputs` names the compare stage's per_image, per_pair and kill_matrix Parquet files and the dataset's
    manifest (photo paths and class names, `dataset`); `variants` maps each variant id to its coordinates and
    `path` (raw outputs).
    """
    plots, tables, dataset = outputs, inputs, inputs.get("dataset")
    unknown = set(plots) - set(PLOTS)
    if unknown:
        raise ValueError(f"unknown plot(s) {sorted(unknown)}; known: {', '.join(PLOTS)}")
    per_image = _read_table(tables.get("per_image"))
    per_pair = _read_table(tables.get("per_pair"))
    kill = _read_table(tables.get("kill_matrix"))
    manifest = read_manifest(dataset) if dataset and all(Path(f).is_file() for f in as_files(dataset)) else {}
    written: dict[str, Path] = {}
    if "heatmap" in plots:
        written["heatmap"] = _draw("heatmap", plots["heatmap"], model,
                                   lambda: disagreement_heatmap(per_pair, plots["heatmap"], model))
    if "kill_matrix" in plots:
        written["kill_matrix"] = _draw("kill matrix", plots["kill_matrix"], model,
                                       lambda: kill_matrix_plot(kill, plots["kill_matrix"], model))
    if "sites" in plots:
        written["sites"] = _draw("sites", plots["sites"], model, lambda: sites_plot(kill, plots["sites"], model))
    if "latency" in plots:
        written["latency"] = _draw("latency", plots["latency"], model,
                                   lambda: latency_plot(latency_frame(per_image), plots["latency"], model, reference))
    if "gallery" in plots:
        def gallery() -> Path:
            changed = changed_images(per_image)
            needed = {reference, *changed["a"], *changed["b"]} & set(variants)
            outputs = {v: _load(variants[v].get("path")) for v in needed}
            return gallery_plot(per_image, outputs, manifest, plots["gallery"], model, reference, _names(manifest))

        written["gallery"] = _draw("gallery", plots["gallery"], model, gallery)
    return written
