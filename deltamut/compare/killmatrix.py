"""The kill matrix: per mutant, did the tests (the images) notice it? And mutation scores.

A mutant is `equivalent` when its IR equals the original's or another mutant's (or no site matched),
`crashed` when it could not be built or every image failed, `killed` when at least one image changed its
top-1 label, produced NaN/Inf or failed while others ran, and `survived` otherwise. The mutation score of
an operator or a category is (killed + crashed) / (mutants - equivalent): equivalent mutants cannot be
killed, so they are left out, as the mutation-testing literature does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

FAILED = ("crash", "timeout", "error")


def mutant_status(row: pd.Series) -> str:
    n = int(row["n_images"])
    def count(verdict: str) -> int:
        value = row.get(f"n_{verdict}", 0)
        return 0 if pd.isna(value) else int(value)

    if count("equivalent") == n:
        return "equivalent"
    failed = sum(count(v) for v in FAILED)
    if failed == n:
        return "crashed"
    if failed or count("top1_flip") or count("nan"):
        return "killed"
    return "survived"


def kill_matrix(per_pair: pd.DataFrame, mutants: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per (optimisation, device, mutant); `mutants` maps a mutant name to its spec info and
    manifest (operator, category, level, candidates, applied)."""
    rows = []
    for _, r in per_pair[per_pair["kind"] == "mutant"].iterrows():
        m = mutants.get((r["opt_a"], r["mutant_a"]), {})
        status = mutant_status(r)
        rows.append({
            "model": r["model"], "opt": r["opt_a"], "device": r["device_a"], "mutant": r["mutant_a"],
            "operator": m.get("operator"), "category": m.get("category"), "level": m.get("level"),
            "candidates": m.get("candidates"), "applied": m.get("applied"),
            "status": status, "equivalent_to": m.get("equivalent_to") if status == "equivalent" else None,
            "top1_changed_pct": r["top1_disagreement_pct"],
            "max_abs_err": r["max_abs_err"], "n_images": r["n_images"], "n_ok": r["n_ok_a"],
            "accuracy": r["accuracy_a"], "accuracy_original": r["accuracy_b"], "verdict": r["verdict"],
            "latency_ratio": r["latency_ratio"],
            # a kill on images whose outputs jitter between runs: killed beyond that jitter, but worth a look
            "nondeterministic_images": r.get("nondeterministic_images", 0),
        })
    return pd.DataFrame(rows, columns=["model", "opt", "device", "mutant", "operator", "category", "level",
                                       "candidates", "applied", "status", "equivalent_to", "top1_changed_pct",
                                       "max_abs_err", "n_images", "n_ok", "accuracy", "accuracy_original", "verdict",
                                       "latency_ratio", "nondeterministic_images"])


def mutation_scores(matrix: pd.DataFrame) -> pd.DataFrame:
    """Scores per operator and per category (rows with `by` telling which), per model, optimisation, device."""
    if matrix.empty:
        return pd.DataFrame(columns=["model", "opt", "device", "by", "group", "mutants", "killed", "crashed",
                                     "survived", "equivalent", "score"])
    frames = []
    for by in ("category", "operator"):
        counts = (matrix.assign(group=matrix[by].fillna("?"))
                  .groupby(["model", "opt", "device", "group", "status"]).size().unstack(fill_value=0))
        for status in ("killed", "crashed", "survived", "equivalent"):
            if status not in counts:
                counts[status] = 0
        counts["mutants"] = counts[["killed", "crashed", "survived", "equivalent"]].sum(axis=1)
        live = counts["mutants"] - counts["equivalent"]
        counts["score"] = np.where(live > 0, (counts["killed"] + counts["crashed"]) / live.where(live > 0, 1),
                                   np.nan)
        frames.append(counts.reset_index().assign(by=by))
    cols = ["model", "opt", "device", "by", "group", "mutants", "killed", "crashed", "survived", "equivalent",
            "score"]
    return pd.concat(frames, ignore_index=True)[cols]
