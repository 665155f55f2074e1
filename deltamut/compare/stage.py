"""Entry points of the compare and summary rules: one model's tables, then the study's summary."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from deltamut.compare.crossdevice import device_discrepancy
from deltamut.compare.killmatrix import kill_matrix, mutation_scores
from deltamut.compare.tables import compare_model
from deltamut.fsutil import as_files, atomic_path, read_json, write_text
from deltamut.study import ORIGINAL
from deltamut.timing.records import read_records

KILL_COLUMNS = ["opt", "device", "mutant", "category", "applied", "status", "duplicate_of", "n_not_comparable",
                "top1_changed_pct", "top_flip", "max_abs_err"]

SUMMARY_COLUMNS = {
    "kind": "kind", "a": "variant", "b": "against", "n_compared": "images",
    "top1_disagreement_pct": "top-1 disagree %", "top5_jaccard_mean": "top-5 Jaccard",
    "max_abs_err": "max |Δlogit|", "accuracy_a": "accuracy", "accuracy_b": "accuracy (against)",
    "median_latency_a_ms": "median ms", "latency_ratio": "ms ratio (variant/against)",
    "verdict": "verdict", "n_not_comparable": "not comparable", "failed_side": "failed",
    "latency_verdict": "speed", "latency_caveat": "speed caveat", "nondeterministic_images": "flaky images",
}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)


def markdown_table(df: pd.DataFrame) -> str:
    """A plain GitHub-markdown table (no extra dependency for a dozen lines of text)."""
    head = "| " + " | ".join(df.columns) + " |\n| " + " | ".join("---" for _ in df.columns) + " |\n"
    return head + "".join("| " + " | ".join(_fmt(v) for v in row) + " |\n" for row in df.itertuples(index=False))


def _write_table(df: pd.DataFrame, csv: str | Path, parquet: str | Path) -> None:
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(parquet) as tmp:
        df.to_parquet(tmp, index=False)


def summary_markdown(per_pair: pd.DataFrame, title: str) -> str:
    cols = [c for c in SUMMARY_COLUMNS if c in per_pair.columns]
    parts = [f"# {title}\n"]
    for model, group in per_pair.groupby("model", sort=False):
        parts.append(f"\n## {model}\n\n")
        parts.append(markdown_table(group[cols].rename(columns=SUMMARY_COLUMNS)))
    parts.append("\nVerdicts grade the worst image of a pair: identical < within_noise < numeric_drift < "
                 "topk_reorder < top1_flip < failures. Accuracy is against the labelled images only.\n")
    return "".join(parts)


def _mutant_info(variants: dict[str, dict[str, Any]], indexes: dict[str, dict[str, Any]]) -> dict[tuple, dict]:
    """Operator, category and level of each (optimisation, mutant) (the study's, in its variant), site counts
    and equivalence from its manifest, and what it duplicates, from the (model, optimisation)'s mutant index
    (`indexes`: opt -> index)."""
    info: dict[tuple, dict[str, Any]] = {}
    for v in variants.values():
        mutant, key = v.get("mutant"), (v.get("opt"), v.get("mutant"))
        if mutant is None or mutant == ORIGINAL or key in info:
            continue
        entry = {k: v.get(k) for k in ("operator", "category", "level", "sweep", "site", "depth")}
        if v.get("level") != "input":  # an input-level mutant runs the original's module: no manifest of its own
            manifest = read_json(v["manifest"])
            entry.update({k: manifest.get(k) for k in ("candidates", "applied", "equivalent_to", "note")})
        twin = (indexes.get(v["opt"]) or {}).get(mutant) or {}
        entry.update(duplicate_of=twin.get("duplicate_of"), duplicate_by=twin.get("duplicate_by"))
        info[key] = entry
    return info


def compare_stage(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], model: str,
                  variants: dict[str, dict[str, Any]], pairs: list[dict[str, Any]], indexes: dict[str, str],
                  thresholds: dict[str, Any] | None) -> pd.DataFrame:
    """Write per-image and per-pair tables (CSV and Parquet), the kill matrix, mutation scores, the mutants'
    cross-device discrepancies, and a readable summary for one model. Reads only its declared inputs: the
    variants' outputs and manifests, `indexes` (opt -> its mutant index) and the images' labels
    (`inputs["inputs"]`)."""
    out = outputs
    result = compare_model(model, variants, pairs, inputs["inputs"], thresholds,
                           read_records(as_files(inputs.get("timings", []))))
    per_pair = result.per_pair
    info = _mutant_info(variants, {opt: read_json(path) for opt, path in indexes.items()})
    matrix = kill_matrix(per_pair, info, result.output_twins)
    scores = mutation_scores(matrix)
    devices = device_discrepancy(per_pair, info)
    _write_table(result.per_image, out["per_image_csv"], out["per_image_parquet"])
    _write_table(per_pair, out["per_pair_csv"], out["per_pair_parquet"])
    _write_table(matrix, out["kill_matrix_csv"], out["kill_matrix_parquet"])
    _write_table(scores, out["scores_csv"], out["scores_parquet"])
    _write_table(devices, out["devices_csv"], out["devices_parquet"])
    text = summary_markdown(per_pair[~per_pair["kind"].isin(["mutant", "mutant_device"])], f"deltamut: {model}")
    if not matrix.empty:
        text += "\n## Mutants\n\n" + markdown_table(matrix[KILL_COLUMNS]) + "\n## Mutation scores\n\n" + \
            markdown_table(scores[scores["by"] == "category"].drop(columns=["by"]))
    if not devices.empty:
        text += ("\n## Mutants across devices\n\nEach mutant on a further device against the same mutant on the "
                 "first, beyond the original's own cross-device difference on each image.\n\n"
                 + markdown_table(devices.drop(columns=["model"])))
    write_text(out["summary"], text)
    return per_pair


def summary_stage(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], unprobed: list[str] = ()) -> pd.DataFrame:
    """The study's per-pair table and summary across models, from each model's `inputs["per_pair"]`, with the
    localisation records (`inputs["localised"]`) and the selected mutants not probed (`unprobed`)."""
    from deltamut.localise.summary import localisation_markdown

    table = pd.concat([pd.read_parquet(f) for f in inputs["per_pair"]], ignore_index=True)
    _write_table(table, outputs["csv"], outputs["parquet"])
    text = summary_markdown(table, "deltamut study summary")
    text += localisation_markdown(list(inputs.get("localised", [])), list(unprobed))
    write_text(outputs["summary"], text)
    return table
