"""The kill matrix: per mutant, did the tests (the images) notice it? And mutation scores.

A mutant is judged only by what it does that its original does not: images where the original failed are
`not_comparable` (counted, shown, never a kill). One status per (mutant, optimisation, device):

- `equivalent`: its lowered IR equals the original's (or no site matched): it cannot be killed;
- `duplicate`: its IR equals another mutant's, which is built and run in its place (`duplicate_of`);
- `not_comparable`: the original failed on every image, so nothing the mutant did can be judged;
- `tool_error`: the mutation tool itself failed (the mutate stage): a failure of deltamut, not a finding;
- `stillborn`: the mutant could not be built for the target (deploy failed): the images never saw it;
- `crashed`: it ran and failed (crash, timeout, error) on every comparable image;
- `killed`: on at least one comparable image its top-1 label changed, it produced NaN/Inf, or it failed;
- `survived`: otherwise.

The mutation score of an operator or a category is (killed + crashed) / (killed + crashed + survived). The
other statuses say nothing about the images' power to notice a change and stay out of it, as in the
mutation-testing literature (equivalent and stillborn mutants are excluded); a mutant whose outputs agree
with another's within their measured noise on every image carries `duplicate_of` too and is counted once,
through the mutant with the smaller name.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from deltamut.compare.verdicts import Verdict
from deltamut.outcome import Stage


class MutantStatus(StrEnum):
    EQUIVALENT = "equivalent"
    DUPLICATE = "duplicate"
    NOT_COMPARABLE = "not_comparable"
    TOOL_ERROR = "tool_error"
    STILLBORN = "stillborn"
    CRASHED = "crashed"
    KILLED = "killed"
    SURVIVED = "survived"


DETECTED = (MutantStatus.KILLED.value, MutantStatus.CRASHED.value)
SCORED = (*DETECTED, MutantStatus.SURVIVED.value)
# Image verdicts of a failure of the mutant itself (not_comparable images are the original's failures)
FAILED = (Verdict.CRASH, Verdict.TIMEOUT, Verdict.ERROR, Verdict.SKIPPED)

COLUMNS = ["model", "opt", "device", "mutant", "operator", "category", "level", "candidates", "applied", "sweep",
           "site", "depth", "status", "equivalent_to", "duplicate_of", "duplicate_by", "top1_changed_pct",
           "top_flip", "max_abs_err", "n_images", "n_ok", "n_not_comparable", "accuracy", "accuracy_original",
           "verdict", "failed_stage", "latency_ratio", "nondeterministic_images", "intermittent_images", "note"]
SCORE_COLUMNS = ["model", "opt", "device", "by", "group", "mutants", *(s.value for s in MutantStatus), "score"]


def _count(row: pd.Series, verdict: str) -> int:
    value = row.get(f"n_{verdict}", 0)
    return 0 if value is None or pd.isna(value) else int(value)


def mutant_status(row: pd.Series, twin: str | None = None, equivalent: bool = False) -> str:
    """The status of one mutant from its per-pair row against the original (see the module docstring);
    `twin`: the mutant whose IR it duplicates, if any; `equivalent`: its IR equals the original's. Both are
    properties of the code, known before anything runs, so they hold whatever the original's runs did."""
    n = int(row["n_images"])
    if twin:
        return MutantStatus.DUPLICATE.value
    if equivalent or _count(row, Verdict.EQUIVALENT) == n:
        return MutantStatus.EQUIVALENT.value
    comparable = n - _count(row, Verdict.NOT_COMPARABLE)
    if comparable == 0:
        return MutantStatus.NOT_COMPARABLE.value
    stage = row.get("failed_stage_a") or ""
    failed = sum(_count(row, v) for v in FAILED)
    if stage == Stage.MUTATE:
        return MutantStatus.TOOL_ERROR.value
    if stage == Stage.DEPLOY and failed == comparable:
        return MutantStatus.STILLBORN.value
    if failed == comparable:
        return MutantStatus.CRASHED.value
    if failed or _count(row, Verdict.TOP1_FLIP) or _count(row, Verdict.NAN):
        return MutantStatus.KILLED.value
    return MutantStatus.SURVIVED.value


def kill_matrix(per_pair: pd.DataFrame, mutants: dict[tuple, dict[str, Any]],
                output_twins: dict[tuple, str] | None = None) -> pd.DataFrame:
    """One row per (optimisation, device, mutant).

    `mutants` maps (optimisation, mutant) to its spec info and manifest (operator, category, level, candidates,
    applied, equivalent_to; for a sweep's mutant its sweep, site and depth; `duplicate_of`/`duplicate_by` for a
    twin found before building);
    `output_twins` maps (optimisation, device, mutant) to the mutant whose outputs it repeats within noise.
    """
    rows = []
    output_twins = output_twins or {}
    for _, r in per_pair[per_pair["kind"] == "mutant"].iterrows():
        m = mutants.get((r["opt_a"], r["mutant_a"]), {})
        status = mutant_status(r, m.get("duplicate_of"), equivalent=bool(m.get("equivalent_to")))
        twin, by = (m.get("duplicate_of"), m.get("duplicate_by")) if status == MutantStatus.DUPLICATE else (None, None)
        ran_twin = output_twins.get((r["opt_a"], r["device_a"], r["mutant_a"]))
        if ran_twin and status in SCORED:
            twin, by = ran_twin, "outputs"
        rows.append({
            "model": r["model"], "opt": r["opt_a"], "device": r["device_a"], "mutant": r["mutant_a"],
            **{k: m.get(k) for k in ("operator", "category", "level", "candidates", "applied", "sweep", "site",
                                     "depth")},
            "status": status, "equivalent_to": m.get("equivalent_to") if status == MutantStatus.EQUIVALENT else None,
            "duplicate_of": twin, "duplicate_by": by,
            "top1_changed_pct": r["top1_disagreement_pct"], "top_flip": r.get("top_flip", ""),
            "max_abs_err": r["max_abs_err"], "n_images": r["n_images"], "n_ok": r["n_ok_a"],
            "n_not_comparable": _count(r, Verdict.NOT_COMPARABLE),
            "accuracy": r["accuracy_a"], "accuracy_original": r["accuracy_b"], "verdict": r["verdict"],
            "failed_stage": r.get("failed_stage_a") or "", "latency_ratio": r["latency_ratio"],
            # a kill on images whose outputs jitter between runs: killed beyond that jitter, but worth a look
            "nondeterministic_images": r.get("nondeterministic_images", 0),
            "intermittent_images": r.get("n_intermittent_a", 0),
            "note": m.get("note") or "",  # the manifest's: e.g. why a mutant has no site
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def mutation_scores(matrix: pd.DataFrame) -> pd.DataFrame:
    """Scores per operator and per category (rows with `by` telling which), per model, optimisation, device.

    Each status column counts the mutants with that status; a mutant with `duplicate_of` is counted once, as
    `duplicate`, whatever its own status; the score is detected / scored mutants (see the module docstring).
    """
    if matrix.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    counted = matrix.assign(status=np.where(matrix["duplicate_of"].notna(), MutantStatus.DUPLICATE.value,
                                            matrix["status"]))
    frames = []
    for by in ("category", "operator"):
        counts = (counted.assign(group=counted[by].fillna("?"))
                  .groupby(["model", "opt", "device", "group", "status"]).size().unstack(fill_value=0))
        for status in MutantStatus:
            if status.value not in counts:
                counts[status.value] = 0
        counts["mutants"] = counts[[s.value for s in MutantStatus]].sum(axis=1)
        scored = counts[list(SCORED)].sum(axis=1)
        detected = counts[list(DETECTED)].sum(axis=1)
        counts["score"] = np.where(scored > 0, detected / scored.where(scored > 0, 1), np.nan)
        frames.append(counts.reset_index().assign(by=by))
    return pd.concat(frames, ignore_index=True)[SCORE_COLUMNS]
