"""Mutants across devices: MutateNN's headline comparison, the same mutant built for two devices.

The original itself differs a little between devices (another ISA, another vector width, another libm): its
per-image difference is the noise every mutant's cross-device pair is judged beyond (`Study.pairs` gives each
`mutant_device` pair the original's device pair as its `noise`). What is left is the finding: a mutant whose
undefined behaviour (an out-of-bounds read of a flipped guard) or precision (a float16 store) plays out
differently on each device.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deltamut.compare.verdicts import SEVERITY, Verdict

COLUMNS = ["model", "opt", "device_a", "device_b", "operator", "category", "mutants", "comparable", "diverging",
           "top1_changed_pct_max", "max_abs_err", "original_top1_changed_pct", "original_max_abs_err",
           "mutants_diverging"]

# Verdicts of a mutant's cross-device pair that mean "moves beyond the original's cross-device noise"
_BEYOND = frozenset(v.value for v in SEVERITY[SEVERITY.index(Verdict.NUMERIC_DRIFT):])


def device_discrepancy(per_pair: pd.DataFrame, mutants: dict[tuple, dict[str, Any]]) -> pd.DataFrame:
    """One row per (optimisation, device pair, operator): how many of its mutants diverge across the two devices
    beyond the original's own difference, and by how much, beside the original's figures."""
    cross = per_pair[per_pair["kind"] == "mutant_device"]
    if cross.empty:
        return pd.DataFrame(columns=COLUMNS)
    originals = per_pair[(per_pair["kind"] == "device") & (per_pair["mutant_a"] == "original")]
    original = {(r["opt_a"], r["device_a"], r["device_b"]): r for _, r in originals.iterrows()}
    rows = []
    for _, r in cross.iterrows():
        info = mutants.get((r["opt_a"], r["mutant_a"]), {})
        o = original.get((r["opt_a"], r["device_a"], r["device_b"]))
        rows.append({"model": r["model"], "opt": r["opt_a"], "device_a": r["device_a"], "device_b": r["device_b"],
                     "operator": info.get("operator"), "category": info.get("category"), "mutant": r["mutant_a"],
                     "comparable": r["verdict"] not in (Verdict.NOT_COMPARABLE, Verdict.EQUIVALENT),
                     "diverging": r["verdict"] in _BEYOND, "top1": r["top1_disagreement_pct"],
                     "max_abs_err": r["max_abs_err"],
                     "original_top1": np.nan if o is None else o["top1_disagreement_pct"],
                     "original_max_abs_err": np.nan if o is None else o["max_abs_err"]})
    frame = pd.DataFrame(rows)
    keys = ["model", "opt", "device_a", "device_b", "operator", "category"]
    out = frame.groupby(keys, dropna=False, sort=True).agg(
        mutants=("mutant", "size"), comparable=("comparable", "sum"), diverging=("diverging", "sum"),
        top1_changed_pct_max=("top1", "max"), max_abs_err=("max_abs_err", "max"),
        original_top1_changed_pct=("original_top1", "first"), original_max_abs_err=("original_max_abs_err", "first"),
        mutants_diverging=("mutant", lambda m: ", ".join(sorted(m[frame.loc[m.index, "diverging"]]))),
    ).reset_index()
    return out[COLUMNS]
